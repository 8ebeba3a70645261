package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// family is a refresh-token family: one grant, refreshed again and
// again; each use rotates the token, and presenting an old one revokes
// the whole family (RFC 6819 §5.2.2.3, OAuth 2.0 Security BCP §4.14).
type family struct {
	ID string `json:"id"`
	// grant's SID is the SSO session of an online family, which dies
	// with it; an offline family (offline_access) keeps the SID it was
	// issued in (for the record) but outlives the session.
	grant
	Offline  bool      `json:"offline,omitempty"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	// Absolute is when the family ends, used or not.
	Absolute time.Time `json:"absolute"`
	// Current is the hash of the one refresh token that works; Used the
	// hashes of the ones it replaced.
	Current string   `json:"current"`
	Used    []string `json:"used,omitempty"`
	// Access are the store keys of the family's latest unexpired access
	// tokens, deleted with it. Kept in the record (not a set) so they go
	// when it expires, pruned at every rotation and bounded; a token
	// that fell off the list still dies with the family (liveAccess
	// checks it).
	Access []issuedKey `json:"access,omitempty"`
}

// issuedKey is the store key of an access token and when it expires.
type issuedKey struct {
	Key     string    `json:"k"`
	Expires time.Time `json:"e"`
}

// maxUsedKept bounds the old refresh tokens a family remembers;
// maxAccessKept the keys of its access tokens it deletes when revoked.
const (
	maxUsedKept   = 16
	maxAccessKept = 8
)

// Refresh errors.
var (
	errRefreshReused  = errors.New("refresh token reused: its family is revoked")
	errRefreshClient  = errors.New("refresh token issued to another client")
	errRefreshExpired = errors.New("refresh token invalid, expired or revoked")
	errRefreshScope   = errors.New("scope not granted")
)

// refreshToken is "<family id>.<secret>": the family is found by its id,
// the token checked by its hash.
func refreshToken(familyID string) string { return familyID + "." + randomToken() }

func familyOf(tok string) (string, bool) {
	id, secret, ok := strings.Cut(tok, ".")
	return id, ok && len(id) >= 16 && len(id) <= 64 && len(secret) >= 32 && len(tok) <= 256
}

// familyTTL is how long the record of f is kept from now.
func familyTTL(f *family, now time.Time, idle time.Duration) time.Duration {
	return min(idle, f.Absolute.Sub(now))
}

// newFamily stores f (its ID, dates and current token set here) with its
// first access token (at, whose Family is set here), all at once, and
// returns the refresh token and the access token.
func (t *tokens) newFamily(ctx context.Context, f *family, idle time.Duration, at accessToken, accessTTL time.Duration) (refresh, access, accessKey string, err error) {
	f.ID = randomToken()[:22]
	now := t.now()
	f.Created, f.LastUsed = now, now
	refresh = refreshToken(f.ID)
	f.Current = hashOf(refresh)
	at.Family, at.Offline = f.ID, f.Offline
	access, accessKey, put := t.newAccess(&at, accessTTL)
	f.Access = []issuedKey{{accessKey, at.Expires}}
	b, _ := json.Marshal(f)
	ttl := familyTTL(f, now, idle)
	if ttl <= 0 {
		return "", "", "", errors.New("refresh token lifetime is over before it starts")
	}
	ops := []store.Op{store.Create(keyFamily+f.ID, b, ttl), put, store.SetAdd(setFamiliesOf+f.Subject, f.ID)}
	if f.SID != "" && !f.Offline {
		ops = append(ops, store.SetAdd(setBySession+f.SID, keyFamily+f.ID))
	}
	if err := t.st.Apply(ctx, ops...); err != nil {
		return "", "", "", fmt.Errorf("storing refresh token: %w", err)
	}
	return refresh, access, accessKey, nil
}

// familyByID loads a family.
func (t *tokens) familyByID(ctx context.Context, id string) (*family, []byte, error) {
	var f family
	found, b, err := t.load(ctx, keyFamily+id, &f)
	if err != nil {
		return nil, nil, err
	} else if !found {
		return nil, nil, errRefreshExpired
	}
	return &f, b, nil
}

// rotation is one use of a refresh token: the family as it was, the next
// refresh token and the new access token.
type rotation struct {
	family          *family
	refresh, access string
}

// maxRotateAttempts bounds the compare-and-swap rounds of rotate.
const maxRotateAttempts = 8

// rotate exchanges a refresh token of client for the next one of its
// family and a new access token for scopes (nil: the family's), written
// together. Presenting a token that was already used revokes the family.
func (t *tokens) rotate(ctx context.Context, tok, clientID string, scope []string, idle, accessTTL time.Duration) (*rotation, error) {
	id, ok := familyOf(tok)
	if !ok {
		return nil, errRefreshExpired
	}
	for range maxRotateAttempts {
		f, old, err := t.familyByID(ctx, id)
		if err != nil {
			return nil, err
		}
		now := t.now()
		switch {
		case f.ClientID != clientID:
			return nil, errRefreshClient
		case !now.Before(f.Absolute):
			return nil, errRefreshExpired
		case !sameHash(hashOf(tok), f.Current):
			if !slices.ContainsFunc(f.Used, func(u string) bool { return sameHash(hashOf(tok), u) }) {
				return nil, errRefreshExpired
			}
			if err := t.revokeFamily(ctx, f.ID); err != nil {
				return nil, err
			}
			return &rotation{family: f}, errRefreshReused
		}
		g := f.grant
		if scope != nil {
			for _, s := range scope {
				if !slices.Contains(f.Scopes, s) {
					return nil, errRefreshScope
				}
			}
			g.Scopes = scope
		}
		was := *f
		next := refreshToken(id)
		at := accessToken{grant: g, Family: f.ID, Offline: f.Offline}
		access, key, put := t.newAccess(&at, accessTTL)
		f.Used = append(f.Used, f.Current)
		if len(f.Used) > maxUsedKept {
			f.Used = f.Used[len(f.Used)-maxUsedKept:]
		}
		f.Current, f.LastUsed = hashOf(next), now
		f.Access = slices.DeleteFunc(f.Access, func(k issuedKey) bool { return !now.Before(k.Expires) })
		f.Access = append(f.Access, issuedKey{key, at.Expires})
		if len(f.Access) > maxAccessKept {
			// The oldest stay valid until they expire, and die with the
			// family all the same: an access token of a family counts
			// only while its family stands (liveAccess).
			f.Access = f.Access[len(f.Access)-maxAccessKept:]
		}
		b, _ := json.Marshal(f)
		err = t.st.Apply(ctx, store.Match(keyFamily+id, old), store.Put(keyFamily+id, b, familyTTL(f, now, idle)), put)
		if errors.Is(err, store.ErrConflict) {
			continue // used or revoked at the same moment: look again
		} else if err != nil {
			return nil, fmt.Errorf("rotating refresh token: %w", err)
		}
		was.Scopes = g.Scopes
		return &rotation{family: &was, refresh: next, access: access}, nil
	}
	return nil, fmt.Errorf("rotating refresh token: changed by others %d times in a row: %w", maxRotateAttempts, store.ErrConflict)
}

// findFamily returns the family a refresh token belongs to, if it is
// the family's current token (or, with used, one it replaced) and the
// family has not reached its end.
func (t *tokens) findFamily(ctx context.Context, tok string, used bool) (*family, error) {
	id, ok := familyOf(tok)
	if !ok {
		return nil, errRefreshExpired
	}
	f, _, err := t.familyByID(ctx, id)
	if err != nil {
		return nil, err
	}
	h := hashOf(tok)
	known := sameHash(h, f.Current) || used && slices.ContainsFunc(f.Used, func(u string) bool { return sameHash(h, u) })
	if !known || !t.now().Before(f.Absolute) {
		return nil, errRefreshExpired
	}
	return f, nil
}

// revokeFamily ends a family and every access token it issued. The
// record is removed atomically with reading its token list, so a
// rotation racing with it either lands first (and its token is in the
// list) or fails. A family already gone is not an error.
func (t *tokens) revokeFamily(ctx context.Context, id string) error {
	var f family
	err := t.st.Update(ctx, keyFamily+id, time.Minute, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errRefreshExpired
		}
		f = family{}
		return nil, json.Unmarshal(old, &f)
	})
	if errors.Is(err, errRefreshExpired) {
		return nil
	} else if err != nil {
		return fmt.Errorf("revoking refresh token: %w", err)
	}
	ops := []store.Op{store.SetRemove(setFamiliesOf+f.Subject, f.ID)}
	for _, k := range f.Access {
		ops = append(ops, store.Delete(k.Key))
	}
	if f.SID != "" && !f.Offline {
		ops = append(ops, store.SetRemove(setBySession+f.SID, keyFamily+f.ID))
	}
	return t.st.Apply(ctx, ops...)
}

// families lists a user's live refresh families.
func (t *tokens) families(ctx context.Context, sub string) ([]family, error) {
	ids, err := t.st.SetMembers(ctx, setFamiliesOf+sub)
	if err != nil {
		return nil, err
	}
	var out []family
	for _, id := range ids {
		f, _, err := t.familyByID(ctx, id)
		if errors.Is(err, errRefreshExpired) {
			_ = t.st.SetRemove(ctx, setFamiliesOf+sub, id)
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, *f)
	}
	return out, nil
}

// revokeClient ends every refresh family (and its access tokens) of sub
// for client (consent withdrawn on the account page).
func (t *tokens) revokeClient(ctx context.Context, sub, clientID string) error {
	fams, err := t.families(ctx, sub)
	if err != nil {
		return err
	}
	for _, f := range fams {
		if f.ClientID == clientID {
			if err := t.revokeFamily(ctx, f.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
