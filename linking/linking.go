// Package linking is the chain's Linker: it turns an identity at another
// issuer (a remote OpenID provider, a social login) into a local
// account. A linked identity signs in as its account; an identity no
// account has gets a new account when its module allows (just-in-time);
// an identity whose verified address is an existing account's is never
// signed in as that account: the person must sign in to it first
// (chain.ProveAccount), then the identity is linked.
//
// It imports chain, users and audit.
package linking

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Linker links identities at other issuers to local accounts.
type Linker struct {
	Users *users.Directory
	Audit *audit.Log
	Now   func() time.Time
}

// Link returns the account c is linked to, or makes one (c.Create), or
// asks for proof of the account c's verified address names.
func (l *Linker) Link(ctx context.Context, a *chain.Attempt, c chain.Claims) (string, error) {
	u, err := l.Users.LookupRemote(ctx, c.Issuer, c.Subject)
	if err == nil {
		return u.Subject, nil // (in an account attempt the engine refuses another's)
	} else if !errors.Is(err, users.ErrNotFound) {
		return "", err
	}
	if a.Account() {
		// The account page: the signed-in user links it to their
		// account (their session is the proof).
		return l.attachOwn(ctx, a.Subject, c)
	}
	if c.EmailVerified && c.Email != "" {
		owner, err := l.Users.Lookup(ctx, c.Email)
		switch {
		case err == nil && !owner.Inactive && strings.EqualFold(owner.Email, c.Email):
			return "", &chain.ProveAccount{Subject: owner.Subject,
				Message: "An account here already has the address " + c.Email + ". Sign in to it once to link your " +
					c.Module + " sign-in to it; after that, either way signs you in to the same account."}
		case err != nil && !errors.Is(err, users.ErrNotFound):
			return "", err
		}
		// An inactive account's address is not proven (anybody may
		// sign up with any address): it names nobody here.
	}
	if !c.Create {
		return "", chain.ErrNotLinked
	}
	return l.create(ctx, c)
}

// maxNameTries bounds the usernames tried for a new account.
const maxNameTries = 8

// create makes an active account for c, linked to it, in one write.
// The address is kept only when the provider verified it: an
// unverified one would claim an address nobody proved.
func (l *Linker) create(ctx context.Context, c chain.Claims) (string, error) {
	nu := users.User{Name: c.Name, GivenName: c.GivenName, FamilyName: c.FamilyName,
		Remotes: []users.Remote{l.remote(c)}}
	if c.EmailVerified {
		nu.Email, nu.EmailVerified = c.Email, true
	}
	base := username(c)
	for i := range maxNameTries {
		nu.Username = base
		if i > 0 {
			nu.Username = fmt.Sprintf("%s-%d", base, randomNumber())
		}
		u, err := l.Users.Create(ctx, nu, "")
		switch {
		case err == nil:
			l.Audit.Record(ctx, audit.Event{Event: audit.AccountCreated, User: u.Username, Subject: u.Subject, Module: c.Module,
				Reason: "active: just-in-time, from a sign-in at " + c.Issuer})
			l.Audit.Record(ctx, audit.Event{Event: audit.IdentityLinked, User: u.Username, Subject: u.Subject, Module: c.Module,
				Target: c.Issuer + " " + c.Subject, Reason: "just-in-time account"})
			return u.Subject, nil
		case errors.Is(err, users.ErrLinked):
			// Another request made its account meanwhile.
			u, err := l.Users.LookupRemote(ctx, c.Issuer, c.Subject)
			if err != nil {
				return "", err
			}
			return u.Subject, nil
		case errors.Is(err, users.ErrTaken):
			if nu.Email != "" {
				if _, e := l.Users.Lookup(ctx, nu.Email); e == nil {
					// The address was claimed meanwhile: ask again.
					return "", chain.ErrNotLinked
				}
			}
			continue
		default:
			return "", fmt.Errorf("creating an account for %s: %w", c.Issuer, err)
		}
	}
	return "", fmt.Errorf("creating an account for %s: no free username like %q", c.Issuer, base)
}

// Attach links c to the account subject (proven by a sign-in, or the
// signed-in user on the account page).
func (l *Linker) Attach(ctx context.Context, subject string, c chain.Claims) error {
	_, err := l.Users.Update(ctx, subject, func(u *users.User) error {
		if _, has := u.RemoteOf(c.Issuer, c.Subject); !has {
			u.Remotes = append(u.Remotes, l.remote(c))
		}
		return nil
	})
	return err
}

// attachOwn links c to subject on the account page; an identity linked
// to someone meanwhile is theirs.
func (l *Linker) attachOwn(ctx context.Context, subject string, c chain.Claims) (string, error) {
	err := l.Attach(ctx, subject, c)
	if errors.Is(err, users.ErrLinked) {
		u, err := l.Users.LookupRemote(ctx, c.Issuer, c.Subject)
		if err != nil {
			return "", err
		}
		return u.Subject, nil
	} else if err != nil {
		return "", err
	}
	u, _ := l.Users.Get(ctx, subject)
	l.Audit.Record(ctx, audit.Event{Event: audit.IdentityLinked, User: u.Username, Subject: subject, Module: c.Module,
		Target: c.Issuer + " " + c.Subject, Reason: "the account page"})
	return subject, nil
}

func (l *Linker) remote(c chain.Claims) users.Remote {
	label := c.Email
	if label == "" {
		label = c.PreferredUsername
	}
	if label == "" {
		label = c.Name
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	return users.Remote{Issuer: c.Issuer, Subject: c.Subject, Module: c.Module, Label: label, LinkedAt: now().UTC().Truncate(time.Second)}
}

// username proposes a local username for c: its preferred username, or
// its address's local part, kept to the characters usernames allow.
func username(c chain.Claims) string {
	for _, v := range []string{c.PreferredUsername, strings.SplitN(c.Email, "@", 2)[0], c.Name} {
		var b strings.Builder
		for _, r := range v {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-", r):
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('.')
			}
			if b.Len() >= 48 {
				break
			}
		}
		if s := b.String(); s != "" && users.ValidateUsername(s) == nil {
			return s
		}
	}
	return "user"
}

func randomNumber() int64 {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err)
	}
	return n.Int64()
}

var _ chain.Linker = (*Linker)(nil)
