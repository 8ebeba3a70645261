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
	// setBySession indexes the access tokens (outside refresh families)
	// and the online refresh families of an SSO session; setFamiliesOf a
	// user's families (for "apps with access"). A family keeps its own
	// access tokens' keys.
	setBySession  = "at-sid:"
	setFamiliesOf = "rtf-sub:"
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

// newAccess makes an access token for at: the token, its store key and
// the write that stores it.
func (t *tokens) newAccess(at *accessToken, ttl time.Duration) (tok, key string, put store.Op) {
	tok = randomToken()
	key = hashKey(keyAccessToken, tok)
	at.Issued = t.now()
	at.Expires = at.Issued.Add(ttl)
	b, _ := json.Marshal(at)
	return tok, key, store.Put(key, b, ttl)
}

// issueAccess stores a new access token that belongs to no refresh
// family, indexed by its session, and returns it and its key.
func (t *tokens) issueAccess(ctx context.Context, at accessToken, ttl time.Duration) (string, string, error) {
	tok, key, put := t.newAccess(&at, ttl)
	ops := []store.Op{put}
	if at.SID != "" {
		ops = append(ops, store.SetAdd(setBySession+at.SID, key))
	}
	if err := t.st.Apply(ctx, ops...); err != nil {
		return "", "", fmt.Errorf("storing access token: %w", err)
	}
	return tok, key, nil
}

// load reads the JSON record under key into v; found is false (and err
// nil) when there is none. raw is the record as stored.
func (t *tokens) load(ctx context.Context, key string, v any) (found bool, raw []byte, err error) {
	b, err := t.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil, nil
	} else if err != nil {
		return false, nil, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, nil, fmt.Errorf("decoding %s: %w", strings.SplitN(key, ":", 2)[0], err)
	}
	return true, b, nil
}

// errTokenGone: no such token, expired or revoked.
var errTokenGone = errors.New("token invalid, expired or revoked")

// access returns the live record of an access token.
func (t *tokens) access(ctx context.Context, tok string) (*accessToken, error) {
	if tok == "" || len(tok) > 512 {
		return nil, errTokenGone
	}
	var at accessToken
	if found, _, err := t.load(ctx, hashKey(keyAccessToken, tok), &at); err != nil {
		return nil, fmt.Errorf("loading access token: %w", err)
	} else if !found {
		return nil, errTokenGone
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
	if at.SID != "" && at.Family == "" {
		ops = append(ops, store.SetRemove(setBySession+at.SID, key))
	}
	return t.st.Apply(ctx, ops...)
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
			if err := t.revokeFamily(ctx, id); err != nil {
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

// requestWindow is a fixed-window count of requests.
type requestWindow struct {
	Start time.Time `json:"s"`
	N     int       `json:"n"`
}

// errRateFull: the window's requests are used up.
var errRateFull = errors.New("too many requests")

// countRequest counts a request under key (a kind of request and who
// sends it, such as an address): at most limit per window. Over the
// limit it returns how long to wait, and writes nothing.
func (t *tokens) countRequest(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	now := t.now()
	full := func(r *requestWindow) time.Duration {
		if end := r.Start.Add(window); now.Before(end) && r.N >= limit {
			return end.Sub(now)
		}
		return 0
	}
	if b, err := t.st.Get(ctx, key); err == nil {
		var r requestWindow
		if json.Unmarshal(b, &r) == nil {
			if wait := full(&r); wait > 0 {
				return wait, nil
			}
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("counting requests: %w", err)
	}
	var wait time.Duration
	err := t.st.Update(ctx, key, window, func(old []byte) ([]byte, error) {
		var r requestWindow
		if old == nil || json.Unmarshal(old, &r) != nil || !now.Before(r.Start.Add(window)) {
			r = requestWindow{Start: now}
		}
		if wait = full(&r); wait > 0 {
			return nil, errRateFull
		}
		r.N++
		return json.Marshal(r)
	})
	if errors.Is(err, errRateFull) {
		return wait, nil
	} else if err != nil {
		return 0, fmt.Errorf("counting requests: %w", err)
	}
	return 0, nil
}
