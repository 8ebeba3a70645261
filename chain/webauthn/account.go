package webauthn

import (
	"context"
	"errors"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Account is u's passkeys on the account page, with "Add a passkey".
// Keys are the user's whichever instance made them, so only the first
// enabled webauthn instance of the chain shows them (the others show
// nothing), and its Add runs a registration.
func (m *Module) Account(ctx context.Context, u users.User) (chain.AccountPart, error) {
	if !m.showsAccount {
		return chain.AccountPart{}, nil
	}
	rec, err := m.keys.load(ctx, u.Subject)
	if err != nil {
		return chain.AccountPart{}, err
	}
	part := chain.AccountPart{Title: "Passkeys and security keys"}
	if len(rec.Keys) < maxKeys {
		part.Add = "Add a passkey"
	}
	for _, k := range rec.Keys {
		part.Items = append(part.Items, chain.AccountItem{ID: k.ID(), Label: k.Name, Detail: describe(k)})
	}
	return part, nil
}

// Remove removes u's key id, unless it is the last way in of a user
// without a password.
func (m *Module) Remove(ctx context.Context, u users.User, id string) error {
	rec, err := m.keys.load(ctx, u.Subject)
	if err != nil {
		return err
	}
	if len(rec.Keys) == 1 && rec.Keys[0].ID() == id && u.PasswordHash == "" {
		return chain.RemoveRefused{Reason: "This passkey is your only way to sign in: add another passkey, or set a password, before removing it."}
	}
	gone, err := m.keys.remove(ctx, u.Subject, id)
	if errors.Is(err, errNoKey) || (err == nil && len(gone) == 0) {
		return chain.RemoveRefused{Reason: "You have no such passkey (was it removed already?)."}
	} else if err != nil {
		return err
	}
	m.audit.Record(ctx, audit.Event{Event: audit.PasskeyRemoved, User: u.Username, Subject: u.Subject, Module: m.name,
		Target: id, Reason: "by the user"})
	return nil
}

var _ chain.AccountModule = (*Module)(nil)
