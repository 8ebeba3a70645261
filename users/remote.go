package users

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Remote is an identity at another issuer linked to a local account (a
// remote OpenID provider, a social login): the account signs in through
// it. One remote identity belongs to at most one account.
type Remote struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// Module is the chain module it came through (its name), for the
	// account page and the audit trail.
	Module string `json:"module,omitempty"`
	// Label is what the account page shows of it (an address, a login
	// name there).
	Label    string    `json:"label,omitempty"`
	LinkedAt time.Time `json:"linked_at"`
}

// ErrLinked: the remote identity is linked to another account.
var ErrLinked = errors.New("remote identity already linked to another account")

// maxRemotes bounds the identities one account may have linked.
const maxRemotes = 32

const keyRemote = "user-remote:" // + remoteID: the account it is linked to

// remoteID names the index entry of the identity iss/sub: a hash, so
// that the key has a bounded length and no separator ambiguity.
func remoteID(iss, sub string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s", len(iss), iss, len(sub), sub)
	return hex.EncodeToString(h.Sum(nil))
}

// RemoteOf returns u's link to iss/sub, if any.
func (u User) RemoteOf(iss, sub string) (Remote, bool) {
	i := slices.IndexFunc(u.Remotes, func(r Remote) bool { return r.Issuer == iss && r.Subject == sub })
	if i < 0 {
		return Remote{}, false
	}
	return u.Remotes[i], true
}

// LookupRemote returns the account the identity iss/sub is linked to
// (ErrNotFound when none is).
func (d *Directory) LookupRemote(ctx context.Context, iss, sub string) (User, error) {
	if iss == "" || sub == "" {
		return User{}, ErrNotFound
	}
	owner, err := d.st.Get(ctx, keyRemote+remoteID(iss, sub))
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrNotFound
	} else if err != nil {
		return User{}, fmt.Errorf("looking up remote identity: %w", err)
	}
	u, err := d.Get(ctx, string(owner))
	if err != nil {
		return User{}, err
	}
	if _, ok := u.RemoteOf(iss, sub); !ok {
		return User{}, ErrNotFound // an index entry its account no longer names
	}
	return u, nil
}

// remoteKeys are the index entries of u's linked identities.
func remoteKeys(u User) map[string]bool {
	out := make(map[string]bool, len(u.Remotes))
	for _, r := range u.Remotes {
		out[keyRemote+remoteID(r.Issuer, r.Subject)] = true
	}
	return out
}

// checkRemotes refuses a list of linked identities that names one twice
// or an incomplete one, or is too long.
func checkRemotes(rs []Remote) error {
	if len(rs) > maxRemotes {
		return fmt.Errorf("an account may have at most %d linked identities", maxRemotes)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if r.Issuer == "" || r.Subject == "" {
			return errors.New("a linked identity needs an issuer and a subject")
		}
		id := remoteID(r.Issuer, r.Subject)
		if seen[id] {
			return errors.New("the same identity is linked twice")
		}
		seen[id] = true
	}
	return nil
}

// remoteOps are the index changes from old's linked identities to u's,
// in the batch that writes u: new entries are created (ErrExists when
// another account has one: the batch fails whole), dropped ones deleted.
func remoteOps(old, u User) []store.Op {
	before, after := remoteKeys(old), remoteKeys(u)
	var ops []store.Op
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if !before[k] {
			ops = append(ops, store.Create(k, []byte(u.Subject), 0))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if !after[k] {
			ops = append(ops, store.Delete(k))
		}
	}
	return ops
}

// taken tells why a batch adding u's identities found a key in use: a
// linked identity another account has (ErrLinked), else ErrTaken.
func (d *Directory) taken(ctx context.Context, old, u User) error {
	before := remoteKeys(old)
	for k := range remoteKeys(u) {
		if before[k] {
			continue
		}
		if owner, err := d.st.Get(ctx, k); err == nil && string(owner) != u.Subject {
			return ErrLinked
		}
	}
	return ErrTaken
}
