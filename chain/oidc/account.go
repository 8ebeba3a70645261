package oidc

import (
	"context"
	"errors"
	"slices"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// linked is a remote module's part of the account page: the identities
// at its issuer linked to the user, each removable while the user keeps
// another way in, and a button to link one.
type linked struct {
	d      chain.Deps
	label  string
	issuer string
}

// Account lists u's identities at the module's issuer.
func (l linked) Account(_ context.Context, u users.User) (chain.AccountPart, error) {
	part := chain.AccountPart{Title: l.label}
	for _, r := range u.Remotes {
		if r.Issuer != l.issuer {
			continue
		}
		label := r.Label
		if label == "" {
			label = "Account " + r.Subject
		}
		part.Items = append(part.Items, chain.AccountItem{ID: r.Subject, Label: label, Detail: "linked " + r.LinkedAt.Format("2 January 2006")})
	}
	if len(part.Items) == 0 {
		part.Add = "Link your " + l.label + " account"
	}
	return part, nil
}

// errLastWay refuses removing the only way into an account.
var errLastWay = chain.RemoveRefused{Reason: "This is your only way to sign in. Set a password or link another account first."}

// Remove unlinks u's identity id at the module's issuer, unless it is
// u's last way in (no password, no other linked identity); checked in
// the same write that removes it.
func (l linked) Remove(ctx context.Context, u users.User, id string) error {
	if _, ok := u.RemoteOf(l.issuer, id); !ok {
		return chain.RemoveRefused{Reason: "That account is not linked to yours."}
	}
	_, err := l.d.Users.Update(ctx, u.Subject, func(x *users.User) error {
		i := slices.IndexFunc(x.Remotes, func(r users.Remote) bool { return r.Issuer == l.issuer && r.Subject == id })
		if i < 0 {
			return nil // removed meanwhile
		}
		if x.PasswordHash == "" && len(x.Remotes) == 1 {
			return errLastWay
		}
		x.Remotes = slices.Delete(x.Remotes, i, i+1)
		return nil
	})
	var refused chain.RemoveRefused
	if errors.As(err, &refused) {
		return refused
	}
	return err
}
