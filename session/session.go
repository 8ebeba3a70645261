package session

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/gatehouse-idp/gatehouse/store"
)

// ErrNoSession: the request carries no valid, live session.
var ErrNoSession = errors.New("no session")

// Passed records one chain module the session passed.
type Passed struct {
	Module string    `json:"module"`
	Kind   string    `json:"kind"`
	Levels []string  `json:"levels"`
	AMR    []string  `json:"amr,omitempty"`
	At     time.Time `json:"at"`
}

// Session is an IdP single sign-on session.
type Session struct {
	ID       string    `json:"id"`
	Subject  string    `json:"sub"`
	Passed   []Passed  `json:"passed"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	// Expires is the absolute end of the session.
	Expires time.Time `json:"expires"`
	// Clients that received tokens in this session (for logout).
	Clients []string `json:"clients,omitempty"`
}

// AuthTime is when the user last actively authenticated in this session.
func (s *Session) AuthTime() time.Time {
	var t time.Time
	for _, p := range s.Passed {
		if p.At.After(t) {
			t = p.At
		}
	}
	return t
}

// Pass records that module was passed at time at, replacing an earlier
// record of the same module.
func (s *Session) Pass(p Passed) {
	s.Passed = slices.DeleteFunc(s.Passed, func(q Passed) bool { return q.Module == p.Module })
	s.Passed = append(s.Passed, p)
}

// AddClient records that client got tokens in this session.
func (s *Session) AddClient(id string) {
	if !slices.Contains(s.Clients, id) {
		s.Clients = append(s.Clients, id)
	}
}

// Options configure a Manager.
type Options struct {
	// CookieName; default "__Host-gatehouse" when Secure, else "gatehouse".
	CookieName string
	// Secure marks cookies Secure (HTTPS only). Only local development
	// turns it off.
	Secure bool
	// Idle: a session unused this long ends. Default 24h.
	Idle time.Duration
	// Lifetime: absolute maximum. Default 30 days... of use.
	Lifetime time.Duration
	Now      func() time.Time
}

// Manager loads and saves sessions and their cookies.
type Manager struct {
	st    store.Store
	codec *securecookie.SecureCookie
	csrf  []byte
	opt   Options
	onEnd func(ctx context.Context, s *Session)
}

const (
	setBySubject = "sso-sub:"
	// setLive and keyMeta let SweepExpired see sessions that expired (the
	// store drops sso:<id> at its TTL) and still tell their clients.
	setLive = "sso-live"
	keyMeta = "sso-meta:"
)

// meta is what is left of a session to log it out after it expired.
type meta struct {
	Subject string   `json:"sub"`
	Clients []string `json:"clients,omitempty"`
}

// SetOnEnd sets what runs when a session is ended by End (logout
// everywhere: back-channel deliveries, gate sessions).
func (m *Manager) SetOnEnd(fn func(ctx context.Context, s *Session)) { m.onEnd = fn }

// End ends s: the record goes, the cookie is cleared (when w is not nil)
// and the end hook runs.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, s *Session) error {
	if err := m.Destroy(ctx, w, s.ID); err != nil {
		return err
	}
	_ = m.st.SetRemove(ctx, setBySubject+s.Subject, s.ID)
	_ = m.st.Delete(ctx, keyMeta+s.ID)
	_ = m.st.SetRemove(ctx, setLive, s.ID)
	if m.onEnd != nil {
		m.onEnd(ctx, s)
	}
	return nil
}

// SweepExpired ends, through the end hook, the sessions that expired
// (idle or absolute) since the last sweep, so that their clients and
// gates hear of it like of a logout. It returns how many it found.
func (m *Manager) SweepExpired(ctx context.Context) (int, error) {
	ids, err := m.st.SetMembers(ctx, setLive)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if _, err := m.Get(ctx, id); err == nil {
			continue
		} else if !errors.Is(err, ErrNoSession) {
			return n, err
		}
		b, err := m.st.Take(ctx, keyMeta+id)
		_ = m.st.SetRemove(ctx, setLive, id)
		if err != nil {
			continue // ended by End meanwhile, or meta already gone
		}
		var md meta
		if json.Unmarshal(b, &md) != nil {
			continue
		}
		_ = m.st.Delete(ctx, keySession+id)
		_ = m.st.SetRemove(ctx, setBySubject+md.Subject, id)
		n++
		if m.onEnd != nil {
			m.onEnd(ctx, &Session{ID: id, Subject: md.Subject, Clients: md.Clients})
		}
	}
	return n, nil
}

// ListFor returns the live sessions of subject (newest first).
func (m *Manager) ListFor(ctx context.Context, subject string) ([]*Session, error) {
	ids, err := m.st.SetMembers(ctx, setBySubject+subject)
	if err != nil {
		return nil, err
	}
	var out []*Session
	for _, id := range ids {
		s, err := m.Get(ctx, id)
		if errors.Is(err, ErrNoSession) {
			_ = m.st.SetRemove(ctx, setBySubject+subject, id)
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Session) int { return b.LastSeen.Compare(a.LastSeen) })
	return out, nil
}

// NewManager returns a Manager whose cookie keys live in st.
func NewManager(ctx context.Context, st store.Store, opt Options) (*Manager, error) {
	k, err := loadOrCreateKeys(ctx, st)
	if err != nil {
		return nil, err
	}
	if opt.CookieName == "" {
		opt.CookieName = "gatehouse"
		if opt.Secure {
			opt.CookieName = "__Host-gatehouse"
		}
	}
	if opt.Idle <= 0 {
		opt.Idle = 24 * time.Hour
	}
	if opt.Lifetime <= 0 {
		opt.Lifetime = 30 * 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	codec := securecookie.New(k.Hash, k.Block)
	codec.MaxAge(int(opt.Lifetime / time.Second))
	codec.SetSerializer(securecookie.JSONEncoder{})
	return &Manager{st: st, codec: codec, csrf: k.CSRF, opt: opt}, nil
}

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.opt.Now() }

// CookieName is the SSO cookie's name; related cookies derive theirs.
func (m *Manager) CookieName() string { return m.opt.CookieName }

// Secure reports whether cookies are HTTPS-only.
func (m *Manager) Secure() bool { return m.opt.Secure }

const keySession = "sso:"

// Load returns the live session the request's cookie names.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(m.opt.CookieName)
	if err != nil {
		return nil, ErrNoSession
	}
	var id string
	if err := m.codec.Decode(m.opt.CookieName, c.Value, &id); err != nil {
		return nil, ErrNoSession
	}
	return m.Get(r.Context(), id)
}

// Get returns the live session with the given id.
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	b, err := m.st.Get(ctx, keySession+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding session: %w", err)
	}
	now := m.opt.Now()
	if now.After(s.Expires) || now.Sub(s.LastSeen) > m.opt.Idle {
		return nil, ErrNoSession
	}
	return &s, nil
}

// New returns a fresh, unsaved session for subject.
func (m *Manager) New(subject string) *Session {
	now := m.opt.Now()
	return &Session{
		ID:       base64.RawURLEncoding.EncodeToString(random(32)),
		Subject:  subject,
		Created:  now,
		LastSeen: now,
		Expires:  now.Add(m.opt.Lifetime),
	}
}

// Save stores s and, when w is not nil, sets its cookie.
func (m *Manager) Save(ctx context.Context, w http.ResponseWriter, s *Session) error {
	now := m.opt.Now()
	s.LastSeen = now
	ttl := min(s.Expires.Sub(now), m.opt.Idle)
	if ttl <= 0 {
		return ErrNoSession
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := m.st.Set(ctx, keySession+s.ID, b, ttl); err != nil {
		return fmt.Errorf("saving session: %w", err)
	}
	if err := m.st.SetAdd(ctx, setBySubject+s.Subject, s.ID); err != nil {
		return fmt.Errorf("indexing session: %w", err)
	}
	mb, _ := json.Marshal(meta{Subject: s.Subject, Clients: s.Clients})
	if err := m.st.Set(ctx, keyMeta+s.ID, mb, s.Expires.Sub(now)+24*time.Hour); err != nil {
		return fmt.Errorf("indexing session: %w", err)
	}
	if err := m.st.SetAdd(ctx, setLive, s.ID); err != nil {
		return fmt.Errorf("indexing session: %w", err)
	}
	if w != nil {
		v, err := m.codec.Encode(m.opt.CookieName, s.ID)
		if err != nil {
			return fmt.Errorf("encoding session cookie: %w", err)
		}
		http.SetCookie(w, &http.Cookie{
			Name: m.opt.CookieName, Value: v, Path: "/",
			HttpOnly: true, Secure: m.opt.Secure, SameSite: http.SameSiteLaxMode,
		})
	}
	return nil
}

// Destroy deletes the session and clears its cookie.
func (m *Manager) Destroy(ctx context.Context, w http.ResponseWriter, id string) error {
	if w != nil {
		http.SetCookie(w, &http.Cookie{
			Name: m.opt.CookieName, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, Secure: m.opt.Secure, SameSite: http.SameSiteLaxMode,
		})
	}
	if err := m.st.Delete(ctx, keySession+id); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// Browser returns a random id that identifies this browser, setting a
// cookie when there is none. It binds login flows and CSRF tokens to the
// browser that started them.
func (m *Manager) Browser(w http.ResponseWriter, r *http.Request) string {
	name := m.opt.CookieName + "-b"
	if c, err := r.Cookie(name); err == nil {
		var id string
		if m.codec.Decode(name, c.Value, &id) == nil && id != "" {
			return id
		}
	}
	id := base64.RawURLEncoding.EncodeToString(random(18))
	v, err := m.codec.Encode(name, id)
	if err == nil {
		http.SetCookie(w, &http.Cookie{
			Name: name, Value: v, Path: "/",
			HttpOnly: true, Secure: m.opt.Secure, SameSite: http.SameSiteLaxMode,
		})
		// Later calls while serving this same request must see the same id.
		replaceCookie(r, &http.Cookie{Name: name, Value: v})
	}
	return id
}

// replaceCookie makes c the only cookie of its name in r.
func replaceCookie(r *http.Request, c *http.Cookie) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, o := range cookies {
		if o.Name != c.Name {
			r.AddCookie(o)
		}
	}
	r.AddCookie(c)
}

// CSRFToken returns the token a form bound to browser and purpose carries.
func (m *Manager) CSRFToken(browser, purpose string) string {
	mac := hmac.New(sha256.New, m.csrf)
	mac.Write([]byte(browser + "\x00" + purpose))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckCSRF compares token with the expected one in constant time.
func (m *Manager) CheckCSRF(browser, purpose, token string) bool {
	if browser == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(m.CSRFToken(browser, purpose)))
}

// Sign returns an HMAC of data with the CSRF key (for other bindings).
func (m *Manager) Sign(data string) string {
	mac := hmac.New(sha256.New, m.csrf)
	mac.Write([]byte("sign\x00" + data))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
