package browser

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Options configure a State.
type Options struct {
	// Secure marks every cookie Secure and gives names the __Host-
	// prefix. Only local development over plain HTTP turns it off.
	Secure bool
	// Base is the name every cookie derives its name from; default
	// "gatehouse" ("__Host-gatehouse" when Secure).
	Base string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// State is what Gatehouse keeps in browsers, with its keys. It is safe
// for concurrent use.
type State struct {
	st   store.Store
	opt  Options
	keys atomic.Pointer[ring]
	mu   sync.Mutex // serialises Sync
}

// New loads the keys from st (creating them on first start).
func New(ctx context.Context, st store.Store, opt Options) (*State, error) {
	if opt.Base == "" {
		opt.Base = "gatehouse"
		if opt.Secure {
			opt.Base = "__Host-gatehouse"
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	r, err := load(ctx, st)
	if err != nil {
		return nil, err
	}
	s := &State{st: st, opt: opt}
	s.keys.Store(r)
	return s, nil
}

// Sync brings this instance in step with the store. The store's current
// keys win; keys of this instance the store lacks (it lost its data, or
// another instance created new keys meanwhile) are merged back in as
// previous keys, so every cookie already issued keeps working on every
// instance. Call it periodically.
func (s *State) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ours := s.keys.Load().raw
	var merged stored
	err := s.st.Update(ctx, keyStoreKey, 0, func(old []byte) ([]byte, error) {
		if old == nil {
			merged = ours
			return json.Marshal(ours)
		}
		theirs, err := decodeStored(old)
		if err != nil {
			return nil, err
		}
		m, changed := merge(theirs, ours, s.opt.Now())
		merged = m
		if !changed {
			return old, nil
		}
		return json.Marshal(m)
	})
	if err != nil {
		return fmt.Errorf("syncing cookie keys: %w", err)
	}
	if r := s.keys.Load(); r.raw.keySet.same(merged.keySet) && len(r.raw.Previous) == len(merged.Previous) {
		return nil
	}
	r, err := buildRing(merged)
	if err != nil {
		return err
	}
	s.keys.Store(r)
	return nil
}

// Secure reports whether cookies are HTTPS-only.
func (s *State) Secure() bool { return s.opt.Secure }

// CookieName is the base cookie name; related cookies append to it.
func (s *State) CookieName() string { return s.opt.Base }

// Now is the clock.
func (s *State) Now() time.Time { return s.opt.Now() }

// SetCookie sets a cookie under the policy: Path /, HttpOnly, SameSite
// Lax, Secure unless in development. maxAge < 0 deletes it; 0 makes a
// browser-session cookie.
func (s *State) SetCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	s.SetPathCookie(w, name, "/", value, maxAge)
}

// PathName is the name of a cookie scoped to a path below /: the
// __Host- prefix requires Path=/, so such cookies get __Secure- instead.
func (s *State) PathName(suffix string) string {
	if s.opt.Secure {
		return "__Secure-gatehouse-" + suffix
	}
	return "gatehouse-" + suffix
}

// SetPathCookie is SetCookie for a cookie sent only to path (and below).
func (s *State) SetPathCookie(w http.ResponseWriter, name, path, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: s.opt.Secure, SameSite: http.SameSiteLaxMode}
	switch {
	case maxAge < 0:
		c.Value, c.MaxAge = "", -1
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// Encode encodes v for a cookie named name (securecookie: encrypted and
// authenticated with the current keys).
func (s *State) Encode(name string, v any) (string, error) {
	return s.keys.Load().codecs[0].Encode(name, v)
}

// Decode decodes a value Encode made for name, with any key still valid.
func (s *State) Decode(name, value string, v any) error {
	for _, c := range s.keys.Load().codecs {
		if c.Decode(name, value, v) == nil {
			return nil
		}
	}
	return errors.New("cookie not valid")
}

// BrowserID returns a random id that identifies this browser, setting a
// cookie when there is none. It binds login flows, sealed values and
// CSRF tokens to the browser that started them.
func (s *State) BrowserID(w http.ResponseWriter, r *http.Request) string {
	name := s.opt.Base + "-b"
	if c, err := r.Cookie(name); err == nil {
		var id string
		if s.Decode(name, c.Value, &id) == nil && id != "" {
			return id
		}
	}
	id := base64.RawURLEncoding.EncodeToString(random(18))
	v, err := s.Encode(name, id)
	if err == nil {
		s.SetCookie(w, name, v, 0)
		// Later calls while serving this same request must see the same id.
		ReplaceCookie(r, &http.Cookie{Name: name, Value: v})
	}
	return id
}

// ReplaceCookie makes c the only cookie of its name in r.
func ReplaceCookie(r *http.Request, c *http.Cookie) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, o := range cookies {
		if o.Name != c.Name {
			r.AddCookie(o)
		}
	}
	r.AddCookie(c)
}

func mac(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CSRFToken returns the token a form bound to browser and purpose carries.
func (s *State) CSRFToken(browser, purpose string) string {
	return mac(s.keys.Load().sets[0].CSRF, "csrf", browser, purpose)
}

// CheckCSRF compares token with the expected one in constant time.
func (s *State) CheckCSRF(browser, purpose, token string) bool {
	if browser == "" || token == "" {
		return false
	}
	for _, k := range s.keys.Load().sets {
		if hmac.Equal([]byte(token), []byte(mac(k.CSRF, "csrf", browser, purpose))) {
			return true
		}
	}
	return false
}

// Sign returns a MAC of data for purpose (small signed cookies).
func (s *State) Sign(purpose, data string) string {
	return mac(s.keys.Load().sets[0].Hash, "sign", purpose, data)
}

// Verify reports whether sig is Sign(purpose, data) under a key still
// valid, in constant time.
func (s *State) Verify(purpose, data, sig string) bool {
	if sig == "" {
		return false
	}
	for _, k := range s.keys.Load().sets {
		if hmac.Equal([]byte(sig), []byte(mac(k.Hash, "sign", purpose, data))) {
			return true
		}
	}
	return false
}

// sealed is the plaintext of a sealed value.
type sealed struct {
	Exp int64           `json:"e"`
	V   json.RawMessage `json:"v"`
}

// ErrSealed: a sealed value is malformed, forged, for another purpose,
// or expired.
var ErrSealed = errors.New("sealed value not valid or expired")

// Seal encrypts and authenticates v (as JSON) for purpose, valid for
// ttl: a value that travels through a URL or a form instead of being
// stored, so that an unauthenticated request writes nothing.
func (s *State) Seal(purpose string, v any, ttl time.Duration) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	pt, _ := json.Marshal(sealed{Exp: s.opt.Now().Add(ttl).Unix(), V: b})
	g := s.keys.Load().aeads[0]
	nonce := random(g.NonceSize())
	return base64.RawURLEncoding.EncodeToString(g.Seal(nonce, nonce, pt, []byte(purpose))), nil
}

// Open decodes a value Seal made for purpose into v.
func (s *State) Open(purpose, token string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return ErrSealed
	}
	for _, g := range s.keys.Load().aeads {
		if len(raw) < g.NonceSize()+g.Overhead() {
			return ErrSealed
		}
		pt, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], []byte(purpose))
		if err != nil {
			continue
		}
		var sv sealed
		if json.Unmarshal(pt, &sv) != nil || s.opt.Now().Unix() > sv.Exp {
			return ErrSealed
		}
		if json.Unmarshal(sv.V, v) != nil {
			return ErrSealed
		}
		return nil
	}
	return ErrSealed
}
