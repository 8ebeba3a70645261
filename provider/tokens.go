package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// tokens is the one repository of what the provider hands out: codes,
// access tokens, refresh-token families, consents, pushed requests,
// device codes. Bearer secrets are kept by their hash (a store dump hands
// out nothing live). Everything issued in an SSO session is indexed by
// it, so RevokeSession ends all of it in one call; a refresh family's
// access tokens are indexed by the family.
type tokens struct {
	st  store.Store
	now func() time.Time
}

const (
	keyAccessToken = "at:"
	keyFamily      = "rtf:"
	// setBySession indexes the access tokens and (online) refresh
	// families of an SSO session; setByFamily a family's access tokens;
	// setFamiliesOf a user's families (for "apps with access").
	setBySession  = "at-sid:"
	setByFamily   = "at-fam:"
	setFamiliesOf = "rtf-sub:"
	// maxUsedKept bounds the old refresh tokens a family remembers.
	maxUsedKept = 16
)

// hashOf is the store key part for a bearer secret.
func hashOf(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func sameHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// hashKey is the store key for a bearer secret: its SHA-256, so a store
// dump does not hand out live codes or tokens.
func hashKey(prefix, secret string) string { return prefix + hashOf(secret) }

// accessToken is what an opaque access token stands for. Access tokens
// are random strings looked up in the store (not JWTs): they can be
// revoked at once. They are meant for Gatehouse's own endpoints
// (userinfo) and for resource servers that introspect them.
type accessToken struct {
	grant
	// Family is the refresh family the token was issued with; Offline
	// that family outlives the SSO session, and so does the token.
	Family  string    `json:"family,omitempty"`
	Offline bool      `json:"offline,omitempty"`
	Issued  time.Time `json:"iat,omitzero"`
	Expires time.Time `json:"expires"`
}

// issueAccess stores a new access token, indexed by its session (or its
// refresh family), and returns it.
func (t *tokens) issueAccess(ctx context.Context, at accessToken, ttl time.Duration) (string, string, error) {
	tok := randomToken()
	key := hashKey(keyAccessToken, tok)
	at.Issued = t.now()
	at.Expires = at.Issued.Add(ttl)
	b, _ := json.Marshal(at)
	ops := []store.Op{store.Put(key, b, ttl)}
	if at.SID != "" {
		ops = append(ops, store.SetAdd(setBySession+at.SID, key))
	}
	if at.Family != "" {
		ops = append(ops, store.SetAdd(setByFamily+at.Family, key))
	}
	if err := t.st.Apply(ctx, ops...); err != nil {
		return "", "", fmt.Errorf("storing access token: %w", err)
	}
	return tok, key, nil
}

// errTokenGone: no such token, expired or revoked.
var errTokenGone = errors.New("token invalid, expired or revoked")

// access returns the live record of an access token.
func (t *tokens) access(ctx context.Context, tok string) (*accessToken, error) {
	if tok == "" || len(tok) > 512 {
		return nil, errTokenGone
	}
	b, err := t.st.Get(ctx, hashKey(keyAccessToken, tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errTokenGone
	} else if err != nil {
		return nil, fmt.Errorf("loading access token: %w", err)
	}
	var at accessToken
	if err := json.Unmarshal(b, &at); err != nil {
		return nil, fmt.Errorf("decoding access token: %w", err)
	}
	if t.now().After(at.Expires) {
		return nil, errTokenGone
	}
	return &at, nil
}

// revokeAccess deletes one access token and its index entries.
func (t *tokens) revokeAccess(ctx context.Context, tok string, at *accessToken) error {
	key := hashKey(keyAccessToken, tok)
	ops := []store.Op{store.Delete(key)}
	if at.SID != "" {
		ops = append(ops, store.SetRemove(setBySession+at.SID, key))
	}
	if at.Family != "" {
		ops = append(ops, store.SetRemove(setByFamily+at.Family, key))
	}
	return t.st.Apply(ctx, ops...)
}

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
}

// refreshToken is "<family id>.<secret>": the family is found by its id,
// the token checked by its hash.
func refreshToken(familyID string) string { return familyID + "." + randomToken() }

func familyOf(tok string) (string, bool) {
	id, secret, ok := strings.Cut(tok, ".")
	return id, ok && len(id) >= 16 && len(id) <= 64 && len(secret) >= 32 && len(tok) <= 256
}

// newFamily stores f (its ID, dates and current token set here) and
// returns its first refresh token.
func (t *tokens) newFamily(ctx context.Context, f *family, idle time.Duration) (string, error) {
	f.ID = randomToken()[:22]
	now := t.now()
	f.Created, f.LastUsed = now, now
	tok := refreshToken(f.ID)
	f.Current = hashOf(tok)
	b, _ := json.Marshal(f)
	ttl := min(idle, f.Absolute.Sub(now))
	if ttl <= 0 {
		return "", errors.New("refresh token lifetime is over before it starts")
	}
	ops := []store.Op{store.Create(keyFamily+f.ID, b, ttl), store.SetAdd(setFamiliesOf+f.Subject, f.ID)}
	if f.SID != "" && !f.Offline {
		ops = append(ops, store.SetAdd(setBySession+f.SID, keyFamily+f.ID))
	}
	if err := t.st.Apply(ctx, ops...); err != nil {
		return "", fmt.Errorf("storing refresh token: %w", err)
	}
	return tok, nil
}

// familyByID loads a family.
func (t *tokens) familyByID(ctx context.Context, id string) (*family, error) {
	b, err := t.st.Get(ctx, keyFamily+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errRefreshExpired
	} else if err != nil {
		return nil, err
	}
	var f family
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// Refresh errors.
var (
	errRefreshReused  = errors.New("refresh token reused: its family is revoked")
	errRefreshClient  = errors.New("refresh token issued to another client")
	errRefreshExpired = errors.New("refresh token invalid, expired or revoked")
)

// rotate exchanges a refresh token for the next one of its family.
// Presenting a token that was already used revokes the family.
func (t *tokens) rotate(ctx context.Context, tok, clientID string, idle time.Duration) (*family, string, error) {
	id, ok := familyOf(tok)
	if !ok {
		return nil, "", errRefreshExpired
	}
	now := t.now()
	var f family
	var reused bool
	next := refreshToken(id)
	err := t.st.Update(ctx, keyFamily+id, idle, func(old []byte) ([]byte, error) {
		reused = false
		if old == nil {
			return nil, errRefreshExpired
		}
		f = family{}
		if err := json.Unmarshal(old, &f); err != nil {
			return nil, err
		}
		if f.ClientID != clientID {
			return nil, errRefreshClient
		}
		if !now.Before(f.Absolute) {
			return nil, errRefreshExpired
		}
		if !sameHash(hashOf(tok), f.Current) {
			reused = true
			return old, nil
		}
		f.Used = append(f.Used, f.Current)
		if len(f.Used) > maxUsedKept {
			f.Used = f.Used[len(f.Used)-maxUsedKept:]
		}
		f.Current, f.LastUsed = hashOf(next), now
		return json.Marshal(f)
	})
	if err != nil {
		return nil, "", err
	}
	if reused {
		if err := t.revokeFamily(ctx, &f); err != nil {
			return nil, "", err
		}
		return &f, "", errRefreshReused
	}
	return &f, next, nil
}

// findFamily returns the family a refresh token belongs to, if it is
// the family's current token (or, with used, one it replaced) and the
// family has not reached its end.
func (t *tokens) findFamily(ctx context.Context, tok string, used bool) (*family, error) {
	id, ok := familyOf(tok)
	if !ok {
		return nil, errRefreshExpired
	}
	f, err := t.familyByID(ctx, id)
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

// revokeFamily ends a family and every access token it issued.
func (t *tokens) revokeFamily(ctx context.Context, f *family) error {
	keys, err := t.st.SetMembers(ctx, setByFamily+f.ID)
	if err != nil {
		return err
	}
	ops := []store.Op{store.Delete(keyFamily + f.ID), store.SetRemove(setFamiliesOf+f.Subject, f.ID)}
	for _, k := range keys {
		ops = append(ops, store.Delete(k), store.SetRemove(setByFamily+f.ID, k))
	}
	if f.SID != "" {
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
		b, err := t.st.Get(ctx, keyFamily+id)
		if errors.Is(err, store.ErrNotFound) {
			_ = t.st.SetRemove(ctx, setFamiliesOf+sub, id)
			continue
		} else if err != nil {
			return nil, err
		}
		var f family
		if json.Unmarshal(b, &f) == nil {
			out = append(out, f)
		}
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
	for i := range fams {
		if fams[i].ClientID == clientID {
			if err := t.revokeFamily(ctx, &fams[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// revokeSession ends every access token and online refresh family issued
// in SSO session sid.
func (t *tokens) revokeSession(ctx context.Context, sid string) error {
	keys, err := t.st.SetMembers(ctx, setBySession+sid)
	if err != nil {
		return fmt.Errorf("revoking tokens: %w", err)
	}
	for _, k := range keys {
		if id, ok := strings.CutPrefix(k, keyFamily); ok {
			f, err := t.familyByID(ctx, id)
			if err == nil {
				err = t.revokeFamily(ctx, f)
			}
			if err != nil && !errors.Is(err, errRefreshExpired) {
				return fmt.Errorf("revoking tokens: %w", err)
			}
		}
		if err := t.st.Apply(ctx, store.Delete(k), store.SetRemove(setBySession+sid, k)); err != nil {
			return fmt.Errorf("revoking tokens: %w", err)
		}
	}
	return nil
}

// scopesString is a scope list as OAuth writes it.
func scopesString(s []string) string { return strings.Join(s, " ") }

// hasScope reports whether scopes contains s.
func hasScope(scopes []string, s string) bool { return slices.Contains(scopes, s) }
