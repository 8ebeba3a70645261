package webauthn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-idp/gatehouse/store"
)

// A user's keys are one record, "user:<sub>", in the kind's shared
// store, with two indexes written in the same batch: "handle:<user
// handle>" (the random WebAuthn user handle a passkey returns, to find
// its user) and "cred:<credential id>" (a credential belongs to one
// user only).
const (
	keyUser   = "user:"
	keyHandle = "handle:"
	keyCred   = "cred:"
)

var (
	errNoKey   = errors.New("webauthn: no such key")
	errTooMany = errors.New("webauthn: too many keys")
	errTaken   = errors.New("webauthn: credential registered already")
	// errRaced: another registration gave the user a record (and its
	// user handle) while this one was under way.
	errRaced = errors.New("webauthn: another registration made the user's record meanwhile")
)

// userKeys is a user's record.
type userKeys struct {
	// Handle is the WebAuthn user handle: random, never the subject.
	Handle []byte `json:"handle"`
	Keys   []key  `json:"keys,omitempty"`
}

// key is one registered credential.
type key struct {
	Name     string              `json:"name"`
	Cred     webauthn.Credential `json:"cred"`
	Created  time.Time           `json:"created"`
	LastUsed time.Time           `json:"last_used,omitzero"`
}

// ID is the key's id on the account page and in the admin's list: its
// credential id, base64url.
func (k key) ID() string { return b64(k.Cred.ID) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// keyStore reads and writes users' keys.
type keyStore struct{ st *store.Prefixed }

// load returns sub's keys (a zero record when none).
func (s *keyStore) load(ctx context.Context, sub string) (userKeys, error) {
	rec, _, err := s.read(ctx, sub)
	return rec, err
}

func (s *keyStore) read(ctx context.Context, sub string) (userKeys, []byte, error) {
	var rec userKeys
	b, err := s.st.Get(ctx, keyUser+sub)
	if errors.Is(err, store.ErrNotFound) {
		return rec, nil, nil
	} else if err != nil {
		return rec, nil, fmt.Errorf("loading passkeys: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, nil, fmt.Errorf("decoding passkeys of %s: %w", sub, err)
	}
	return rec, b, nil
}

// byHandle finds the user of a user handle ("" when none).
func (s *keyStore) byHandle(ctx context.Context, handle []byte) (string, error) {
	if len(handle) == 0 || len(handle) > 64 {
		return "", nil
	}
	b, err := s.st.Get(ctx, keyHandle+b64(handle))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return string(b), err
}

// handleFor is sub's user handle, or a new one when sub has no record
// yet (written only when a key is added).
func (s *keyStore) handleFor(ctx context.Context, sub string) ([]byte, error) {
	rec, err := s.load(ctx, sub)
	if err != nil || len(rec.Handle) > 0 {
		return rec.Handle, err
	}
	h := make([]byte, 32)
	rand.Read(h)
	return h, nil
}

// add stores k for sub, whose user handle the ceremony used: the
// record, its handle index (new records) and the credential's index in
// one batch, on the record as read (a concurrent change: try again).
func (s *keyStore) add(ctx context.Context, sub string, handle []byte, k key) error {
	for range 3 {
		rec, old, err := s.read(ctx, sub)
		if err != nil {
			return err
		}
		var ops []store.Op
		if old == nil {
			rec.Handle = handle
			ops = append(ops, store.Absent(keyUser+sub), store.Create(keyHandle+b64(handle), []byte(sub), 0))
		} else {
			ops = append(ops, store.Match(keyUser+sub, old))
		}
		if string(rec.Handle) != string(handle) {
			return errRaced
		}
		if len(rec.Keys) >= maxKeys {
			return errTooMany
		}
		rec.Keys = append(rec.Keys, k)
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		ops = append(ops, store.Put(keyUser+sub, b, 0))
		ops = append(ops, store.Create(keyCred+k.ID(), []byte(sub), 0))
		err = s.st.Apply(ctx, ops...)
		if errors.Is(err, store.ErrConflict) || (errors.Is(err, store.ErrExists) && s.credFree(ctx, k.ID())) {
			continue
		}
		if errors.Is(err, store.ErrExists) {
			return errTaken
		}
		return err
	}
	return errors.New("webauthn: the user's passkeys keep changing; try again")
}

// credFree reports whether no user has credential id (so an ErrExists
// was a race on the record, not a taken credential).
func (s *keyStore) credFree(ctx context.Context, id string) bool {
	_, err := s.st.Get(ctx, keyCred+id)
	return errors.Is(err, store.ErrNotFound)
}

// used records an assertion of sub's credential c (its new counter
// and flags) and when.
func (s *keyStore) used(ctx context.Context, sub string, c *webauthn.Credential, at time.Time) error {
	return s.st.Update(ctx, keyUser+sub, 0, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errNoKey
		}
		var rec userKeys
		if err := json.Unmarshal(old, &rec); err != nil {
			return nil, err
		}
		for i := range rec.Keys {
			if string(rec.Keys[i].Cred.ID) == string(c.ID) {
				rec.Keys[i].Cred.Authenticator.SignCount = c.Authenticator.SignCount
				rec.Keys[i].Cred.Authenticator.CloneWarning = rec.Keys[i].Cred.Authenticator.CloneWarning || c.Authenticator.CloneWarning
				rec.Keys[i].Cred.Flags = c.Flags
				rec.Keys[i].LastUsed = at
				return json.Marshal(rec)
			}
		}
		return nil, errNoKey // removed meanwhile
	})
}

// remove removes sub's key id ("" removes every key and the record),
// and returns the keys removed.
func (s *keyStore) remove(ctx context.Context, sub, id string) ([]key, error) {
	for range 3 {
		rec, old, err := s.read(ctx, sub)
		if err != nil || old == nil {
			return nil, err
		}
		var gone, kept []key
		for _, k := range rec.Keys {
			if id == "" || k.ID() == id {
				gone = append(gone, k)
			} else {
				kept = append(kept, k)
			}
		}
		if len(gone) == 0 {
			return nil, errNoKey
		}
		ops := []store.Op{store.Match(keyUser+sub, old)}
		if len(kept) == 0 {
			ops = append(ops, store.Delete(keyUser+sub), store.Delete(keyHandle+b64(rec.Handle)))
		} else {
			rec.Keys = kept
			b, err := json.Marshal(rec)
			if err != nil {
				return nil, err
			}
			ops = append(ops, store.Put(keyUser+sub, b, 0))
		}
		for _, k := range gone {
			ops = append(ops, store.Delete(keyCred+k.ID()))
		}
		if err := s.st.Apply(ctx, ops...); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return gone, nil
	}
	return nil, errors.New("webauthn: the user's passkeys keep changing; try again")
}

// waUser is a user as the library sees them.
type waUser struct {
	handle      []byte
	name, shown string
	keys        []key
}

func (u *waUser) WebAuthnID() []byte          { return u.handle }
func (u *waUser) WebAuthnName() string        { return u.name }
func (u *waUser) WebAuthnDisplayName() string { return u.shown }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(u.keys))
	for i, k := range u.keys {
		out[i] = k.Cred
	}
	return out
}

var _ webauthn.User = (*waUser)(nil)
