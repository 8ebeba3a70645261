package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Service runs the operations. Every field is required.
type Service struct {
	Store    store.Store
	Users    *users.Directory
	Sessions *session.Manager
	Logout   *logout.Service
	Clients  *provider.Clients
	Keys     *provider.Keys
	Chain    *chain.Engine
	Provider *provider.Provider
	Regulate *regulate.Limiter
	Audit    *audit.Log
	// KeepSessionsOnPasswordChange: a new password set by an admin does
	// not end the user's sessions.
	KeepSessionsOnPasswordChange bool
}

// Kind says why an operation was refused.
type Kind int

const (
	Invalid  Kind = iota + 1 // the request is wrong (bad name, missing password)
	NotFound                 // what it names does not exist
	Conflict                 // it clashes with what exists (a taken username)
)

// Error is an operation refused for a reason to show the admin; any
// other error is a technical failure.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func refuse(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// readOnly refuses a change of what a user source (LDAP) owns, saying
// so; other errors pass.
func readOnly(err error) error {
	if errors.Is(err, users.ErrReadOnly) {
		return refuse(Conflict, "%v", err)
	}
	return err
}

// Action is one admin action for its audit line.
type Action struct {
	// Admin is who ran it; Target what it was on ("user:alice",
	// "client:app", "ip:…"); Subject the account when it was on one.
	Admin, Target, Subject string
	// What is the operation ("POST /gatehouse/users", "disable").
	What string
}

// Record writes the admin_action audit line of a, saying when it was
// refused (err non-nil).
func (s *Service) Record(ctx context.Context, a Action, err error) {
	ev := audit.Event{Event: audit.AdminAction, Admin: a.Admin, Target: a.Target, Subject: a.Subject, Reason: a.What}
	if err != nil {
		ev.Reason += " (refused: " + err.Error() + ")"
	}
	s.Audit.Record(ctx, ev)
}

// FindUser returns the user with this login name.
func (s *Service) FindUser(ctx context.Context, username string) (users.User, error) {
	u, err := s.Users.Lookup(ctx, username)
	if errors.Is(err, users.ErrNotFound) {
		return u, refuse(NotFound, "no user %q", username)
	}
	return u, err
}

// ListUsers returns every user, without secrets.
func (s *Service) ListUsers(ctx context.Context) ([]users.User, error) {
	list, err := s.Users.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]users.User, 0, len(list))
	for _, u := range list {
		out = append(out, u.Public())
	}
	return out, nil
}

// CreateUser creates u with a password.
func (s *Service) CreateUser(ctx context.Context, u users.User, password string) (users.User, error) {
	if password == "" {
		return users.User{}, refuse(Invalid, "a password is required")
	}
	if err := checkGroups(u.Groups); err != nil {
		return users.User{}, err
	}
	u, err := s.Users.Create(ctx, u, password)
	if errors.Is(err, users.ErrTaken) {
		return u, refuse(Conflict, "%v", err)
	} else if err != nil {
		return u, refuse(Invalid, "%v", err)
	}
	return u.Public(), nil
}

// SetPassword sets u's password and, unless configured otherwise, ends
// every session of u: whoever knew the old one is out.
func (s *Service) SetPassword(ctx context.Context, actor string, u users.User, password string) (users.User, error) {
	if password == "" {
		return u, refuse(Invalid, "a password is required")
	}
	u, err := s.Users.SetPassword(ctx, u.Subject, password)
	if errors.Is(err, users.ErrReadOnly) {
		return u, readOnly(err)
	} else if err != nil {
		return u, refuse(Invalid, "%v", err)
	}
	s.Audit.Record(ctx, audit.Event{Event: audit.PasswordChanged, User: u.Username, Subject: u.Subject, Admin: actor})
	if !s.KeepSessionsOnPasswordChange {
		if _, err := s.Logout.EndAll(ctx, u.Subject, logout.Password); err != nil {
			return u, err
		}
	}
	return u.Public(), nil
}

// SetDisabled disables or enables u; disabling ends every session.
func (s *Service) SetDisabled(ctx context.Context, u users.User, disabled bool) (users.User, error) {
	u, err := s.Users.Update(ctx, u.Subject, func(u *users.User) error {
		u.Disabled = disabled
		return nil
	})
	if err != nil {
		return u, err
	}
	if u.Disabled {
		if _, err := s.Logout.EndAll(ctx, u.Subject, logout.Disabled); err != nil {
			return u, err
		}
	}
	return u.Public(), nil
}

func checkGroups(groups []string) error {
	for _, g := range groups {
		if g == "" || len(g) > 128 || strings.ContainsFunc(g, func(r rune) bool { return r == ',' || r == ' ' || unicode.IsControl(r) }) {
			return refuse(Invalid, "bad group name %q", g)
		}
	}
	return nil
}

// SetGroups replaces u's groups.
func (s *Service) SetGroups(ctx context.Context, u users.User, groups []string) (users.User, error) {
	if err := checkGroups(groups); err != nil {
		return u, err
	}
	u, err := s.Users.Update(ctx, u.Subject, func(u *users.User) error {
		u.Groups = groups
		return nil
	})
	if err != nil {
		return u, readOnly(err)
	}
	return u.Public(), nil
}

// ForgetDevices forgets every browser u chose to trust.
func (s *Service) ForgetDevices(ctx context.Context, u users.User) (int, error) {
	return chain.Forget(ctx, s.Store, u.Subject)
}

// ModuleActions lists the chain modules' admin commands.
func (s *Service) ModuleActions() []chain.ModuleAction {
	acts := s.Chain.Actions()
	if acts == nil {
		acts = []chain.ModuleAction{}
	}
	return acts
}

// Act runs a chain module's admin command on u.
func (s *Service) Act(ctx context.Context, u users.User, module, action string) (chain.ActionResult, error) {
	res, err := s.Chain.Act(ctx, module, action, u)
	if errors.Is(err, chain.ErrNoAction) {
		return res, refuse(NotFound, "%v", err)
	}
	return res, err
}

// ResetTOTP runs "reset" on every totp module of the chain and returns
// how many trusted browsers were forgotten with it.
func (s *Service) ResetTOTP(ctx context.Context, u users.User) (int, error) {
	mods := s.Chain.ModulesOfKind("totp")
	if len(mods) == 0 {
		return 0, refuse(NotFound, "the chain has no totp module")
	}
	forgotten := 0
	for _, m := range mods {
		res, err := s.Chain.Act(ctx, m, "reset", u)
		if err != nil {
			return forgotten, err
		}
		forgotten += res.DevicesForgotten
	}
	return forgotten, nil
}

// DeleteUser removes u for good: disabled first (no new sign-in can
// start), every session ended (back-channel logout sent), every token,
// consent and refresh family taken back, what the chain's modules keep
// of them (TOTP, passkeys, trusted browsers) removed, then the account
// itself. It returns the number of sessions ended.
func (s *Service) DeleteUser(ctx context.Context, u users.User) (int, error) {
	if _, err := s.Users.Update(ctx, u.Subject, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
		return 0, err
	}
	ended, err := s.Logout.EndAll(ctx, u.Subject, logout.Deleted)
	if err != nil {
		return 0, err
	}
	if err := s.Provider.ForgetUser(ctx, u.Subject); err != nil {
		return ended, err
	}
	if err := s.Chain.ForgetUser(ctx, u.Subject); err != nil {
		return ended, err
	}
	return ended, s.Users.Delete(ctx, u.Subject)
}
