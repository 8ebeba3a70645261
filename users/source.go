package users

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Source is a directory of people kept elsewhere (LDAP, Active
// Directory) that the Directory federates, the way Keycloak's "user
// federation" does: its people are imported as local accounts marked
// with the source and their stable id there, hold no local password, and
// have the fields the source owns refreshed from it at every sign-in.
type Source interface {
	// Name names the source in account records, the audit trail and
	// error messages. It must not change while accounts refer to it.
	Name() string
	// Authenticate checks login (a username or an address) and password
	// at the source. ErrInvalidCredentials: the source does not know the
	// login, the password is wrong, or the source refuses the account
	// (disabled there). Any other error is the source failing.
	Authenticate(ctx context.Context, login, password string) (Entry, error)
	// Lookup finds login at the source without a password. ErrNotFound:
	// it does not know it (or refuses it).
	Lookup(ctx context.Context, login string) (Entry, error)
	// Refresh reads the entry with the stable id again. ErrNotFound: it
	// is gone or refused.
	Refresh(ctx context.Context, id string) (Entry, error)
}

// Entry is a person as a Source knows them.
type Entry struct {
	// ID is the stable id at the source (it survives renames).
	ID            string
	Username      string
	Email         string
	EmailVerified bool
	Name          string
	GivenName     string
	FamilyName    string
	Groups        []string
}

// Federation marks an account imported from a Source.
type Federation struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	// SyncedAt is when the source last confirmed the account.
	SyncedAt time.Time `json:"synced_at"`
}

// Errors of federated accounts.
var (
	// ErrReadOnly: the change touches what the account's source owns.
	ErrReadOnly = errors.New("read-only: owned by the user source")
	// ErrSourceConflict: the source's entry has a username or address a
	// local account holds. Local accounts come first: the entry is not
	// imported and cannot sign in until one of them is renamed.
	ErrSourceConflict = errors.New("the account's name or address at the user source belongs to a local account")
)

// ReadOnlyError says which field of which account a source owns.
type ReadOnlyError struct{ Field, User, Source string }

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("the %s of %s comes from the user source %q and is read-only here: change it there", e.Field, e.User, e.Source)
}

// Unwrap makes it ErrReadOnly.
func (e *ReadOnlyError) Unwrap() error { return ErrReadOnly }

const keySource = "user-source:" // + sourceKey: the account imported from it

// sourceKey names the index entry of the entry id at source: a hash, for
// a bounded key length and no separator ambiguity.
func sourceKey(source, id string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s", len(source), source, len(id), id)
	return keySource + hex.EncodeToString(h.Sum(nil))
}

// sourceOps is the index entry of a federated account, created with it.
func sourceOps(u User) []store.Op {
	if u.Federation == nil {
		return nil
	}
	return []store.Op{store.Create(sourceKey(u.Federation.Source, u.Federation.ID), []byte(u.Subject), 0)}
}

// Sources are the directory's user sources, in the order they are asked.
func (d *Directory) Sources() []Source { return d.sources }

func (d *Directory) source(name string) Source {
	for _, s := range d.sources {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// readOnly refuses changes by fn (through Update) of what a federated
// account's source owns.
func readOnly(old, u User) error {
	if old.Federation == nil {
		if u.Federation != nil {
			return errors.New("a local account cannot be turned into an imported one")
		}
		return nil
	}
	for _, f := range []struct {
		name    string
		changed bool
	}{
		{"username", u.Username != old.Username},
		{"email", u.Email != old.Email || u.EmailVerified != old.EmailVerified},
		{"name", u.Name != old.Name || u.GivenName != old.GivenName || u.FamilyName != old.FamilyName},
		{"groups", !slices.Equal(u.Groups, old.Groups)},
		{"password", u.PasswordHash != old.PasswordHash},
		{"source", u.Federation == nil || *u.Federation != *old.Federation || u.Inactive != old.Inactive},
	} {
		if f.changed {
			return &ReadOnlyError{Field: f.name, User: old.Username, Source: old.Federation.Source}
		}
	}
	return nil
}

// notShadowing refuses a new local account whose username or address a
// source knows: it would shadow that person (local accounts come first).
func (d *Directory) notShadowing(ctx context.Context, u User) error {
	if u.Federation != nil {
		return nil
	}
	for _, s := range d.sources {
		for _, login := range []string{u.Username, u.Email} {
			if login == "" {
				continue
			}
			_, err := s.Lookup(ctx, login)
			switch {
			case err == nil:
				return fmt.Errorf("%w: %q is an account of the user source %q", ErrTaken, login, s.Name())
			case !errors.Is(err, ErrNotFound):
				return fmt.Errorf("checking the user source %q: %w", s.Name(), err)
			}
		}
	}
	return nil
}

// lookupSources finds login at the sources (importing it) after the
// local directory did not know it.
func (d *Directory) lookupSources(ctx context.Context, login string) (User, error) {
	for _, s := range d.sources {
		e, err := s.Lookup(ctx, login)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return User{}, fmt.Errorf("looking up %q at the user source %q: %w", login, s.Name(), err)
		}
		return d.sync(ctx, s, e)
	}
	return User{}, ErrNotFound
}

// authenticateSource checks a password at the sources: for u, an
// account imported from one, at its own; for a login no local account
// has (u zero), at each in turn. Every refusal costs a dummy password
// check, so that it takes as long as a local unknown user's.
func (d *Directory) authenticateSource(ctx context.Context, u User, login, password string) (User, error) {
	srcs := d.sources
	if u.Federation != nil {
		srcs = nil
		if s := d.source(u.Federation.Source); s != nil {
			srcs = []Source{s}
		}
	}
	for _, s := range srcs {
		e, err := s.Authenticate(ctx, login, password)
		if errors.Is(err, ErrInvalidCredentials) {
			continue
		}
		if err != nil {
			return User{}, fmt.Errorf("checking the password at the user source %q: %w", s.Name(), err)
		}
		got, err := d.sync(ctx, s, e)
		if err != nil {
			return User{}, err
		}
		if got.Disabled || got.Inactive {
			return d.refuse(ctx, password)
		}
		return got, nil
	}
	return d.refuse(ctx, password)
}

// refuse spends a dummy password check and answers ErrInvalidCredentials
// (or ErrBusy, when no check could run).
func (d *Directory) refuse(ctx context.Context, password string) (User, error) {
	_, _, err := d.hasher.Check(ctx, "", password)
	if errors.Is(err, ErrBusy) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return User{}, err
	}
	return User{}, ErrInvalidCredentials
}

// sync imports e from s, or refreshes the account imported from it
// before, with what s says now.
func (d *Directory) sync(ctx context.Context, s Source, e Entry) (User, error) {
	if e.ID == "" {
		return User{}, fmt.Errorf("the user source %q gave an entry without an id", s.Name())
	}
	for range 3 {
		owner, err := d.st.Get(ctx, sourceKey(s.Name(), e.ID))
		if err == nil {
			u, err := d.update(ctx, string(owner), func(u *User) error { applyEntry(u, e, d.now()); return nil }, true)
			if errors.Is(err, ErrTaken) {
				return User{}, fmt.Errorf("%w (%s at %q)", ErrSourceConflict, e.Username, s.Name())
			}
			return u, err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return User{}, fmt.Errorf("looking up an imported account: %w", err)
		}
		var u User
		applyEntry(&u, e, d.now())
		u.Federation = &Federation{Source: s.Name(), ID: e.ID, SyncedAt: d.now()}
		u, err = d.Create(ctx, u, "")
		if !errors.Is(err, ErrTaken) {
			return u, err
		}
		// Taken: by a local account (refused), or by the same entry
		// imported meanwhile by another sign-in (then refreshed).
		if _, err := d.st.Get(ctx, sourceKey(s.Name(), e.ID)); errors.Is(err, store.ErrNotFound) {
			return User{}, fmt.Errorf("%w (%s at %q)", ErrSourceConflict, e.Username, s.Name())
		}
	}
	return User{}, fmt.Errorf("importing %s from %q: %w", e.Username, s.Name(), store.ErrConflict)
}

// applyEntry sets what the source owns.
func applyEntry(u *User, e Entry, now time.Time) {
	u.Username, u.Email, u.EmailVerified = e.Username, e.Email, e.EmailVerified && e.Email != ""
	u.Name, u.GivenName, u.FamilyName = e.Name, e.GivenName, e.FamilyName
	u.Groups = slices.Clone(e.Groups)
	if u.Federation != nil {
		f := *u.Federation
		f.SyncedAt = now
		u.Federation = &f
	}
}

// Current returns the user with subject sub as the directory holds it,
// checked again with its source when it is federated and was last
// confirmed longer ago than the recheck interval: an account its source
// no longer has (or refuses) comes back Disabled, so that sessions and
// tokens of it end at their next refresh. The refusal is not stored: the
// account signs in again as soon as its source lets it.
func (d *Directory) Current(ctx context.Context, sub string) (User, error) {
	u, err := d.Get(ctx, sub)
	if err != nil || u.Federation == nil || u.Disabled || d.now().Sub(u.Federation.SyncedAt) < d.recheck {
		return u, err
	}
	s := d.source(u.Federation.Source)
	if s == nil {
		u.Disabled = true // its source is no longer configured
		return u, nil
	}
	e, err := s.Refresh(ctx, u.Federation.ID)
	if errors.Is(err, ErrNotFound) {
		u.Disabled = true
		return u, nil
	} else if err != nil {
		return User{}, fmt.Errorf("checking %s at the user source %q: %w", u.Username, s.Name(), err)
	}
	return d.sync(ctx, s, e)
}
