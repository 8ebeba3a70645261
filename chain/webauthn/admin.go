package webauthn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Actions: "list" and "remove" (every key of the user).
func (m *Module) Actions() []chain.Action {
	return []chain.Action{
		{Name: "list", Description: "List the user's passkeys and security keys (name, id, added, last used)"},
		{Name: "remove", Description: "Remove every passkey and security key of the user", ForgetDevices: true},
	}
}

// Act runs an admin action.
func (m *Module) Act(ctx context.Context, action string, u users.User) (string, error) {
	switch action {
	case "list":
		rec, err := m.keys.load(ctx, u.Subject)
		if err != nil {
			return "", err
		}
		if len(rec.Keys) == 0 {
			return u.Username + " has no passkeys", nil
		}
		var b strings.Builder
		fmt.Fprintf(&b, "passkeys of %s:", u.Username)
		for _, k := range rec.Keys {
			fmt.Fprintf(&b, "\n  %s  id %s  %s", k.Name, k.ID(), describe(k))
		}
		return b.String(), nil
	case "remove":
		gone, err := m.keys.remove(ctx, u.Subject, "")
		if errors.Is(err, errNoKey) || (err == nil && len(gone) == 0) {
			return u.Username + " has no passkeys", nil
		} else if err != nil {
			return "", err
		}
		for _, k := range gone {
			m.audit.Record(ctx, audit.Event{Event: audit.PasskeyRemoved, User: u.Username, Subject: u.Subject, Module: m.name,
				Target: k.ID(), Reason: "by an administrator"})
		}
		if len(gone) == 1 {
			return "1 passkey of " + u.Username + " removed", nil
		}
		return fmt.Sprintf("%d passkeys of %s removed", len(gone), u.Username), nil
	}
	return "", fmt.Errorf("webauthn has no action %q", action)
}

// describe says when a key was added and last used, and what it is.
func describe(k key) string {
	s := "added " + day(k.Created)
	if !k.LastUsed.IsZero() {
		s += ", last used " + day(k.LastUsed)
	}
	if k.Cred.Flags.BackupEligible {
		s += ", synced passkey"
	} else {
		s += ", bound to its device"
	}
	if k.Cred.Authenticator.CloneWarning {
		s += ", its counter went backwards once (cloned?)"
	}
	return s
}

func day(t time.Time) string { return t.UTC().Format("2 Jan 2006") }

// ForgetUser removes every key of a user being deleted, with the
// indexes of their user handle and credentials.
func (m *Module) ForgetUser(ctx context.Context, sub string) error {
	gone, err := m.keys.remove(ctx, sub, "")
	if errors.Is(err, errNoKey) {
		return nil
	}
	for _, k := range gone {
		m.audit.Record(ctx, audit.Event{Event: audit.PasskeyRemoved, Subject: sub, Module: m.name, Target: k.ID(), Reason: "user deleted"})
	}
	return err
}

var _ chain.UserForgetter = (*Module)(nil)
