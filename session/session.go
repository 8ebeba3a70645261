package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/browser"
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
	// Ref is what the module knows the pass by at another site (a
	// remote provider's session id), for its logout from there.
	Ref string `json:"ref,omitempty"`
}

// Session is an IdP single sign-on session.
type Session struct {
	// ID is the record's key, not kept in it (records written before
	// carry it as "id", which Get ignores).
	ID       string    `json:"-"`
	Subject  string    `json:"sub"`
	Passed   []Passed  `json:"passed"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	// Expires is the absolute end of the session.
	Expires time.Time `json:"expires"`
	// Clients that received tokens in this session (for logout).
	Clients []string `json:"clients,omitempty"`
	// Device ("Firefox on Linux", see Device) and IP: where the session
	// was signed in, shown to its user.
	Device string `json:"device,omitempty"`
	IP     string `json:"ip,omitempty"`
	// raw is the record as loaded: Save writes only over exactly it, so a
	// logout (or another change) in between is never undone.
	raw []byte
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
	// Browser holds the cookie keys and policy. Nil: NewManager makes
	// one over the same store with Secure and Now from these options.
	Browser *browser.State
	// Secure marks cookies Secure (HTTPS only). Only local development
	// turns it off. Ignored when Browser is given.
	Secure bool
	// Idle: a session unused this long ends. Default 24h.
	Idle time.Duration
	// Lifetime: absolute maximum. Default 30 days.
	Lifetime time.Duration
	Now      func() time.Time
}

// Manager loads and saves sessions and their cookies. It embeds the
// browser state (browser id, CSRF, sealing) that forms and flows use.
type Manager struct {
	*browser.State
	st  store.Store
	opt Options
}

// NewManager returns a Manager over st.
func NewManager(ctx context.Context, st store.Store, opt Options) (*Manager, error) {
	if opt.Idle <= 0 {
		opt.Idle = 24 * time.Hour
	}
	if opt.Lifetime <= 0 {
		opt.Lifetime = 30 * 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Browser == nil {
		b, err := browser.New(ctx, st, browser.Options{Secure: opt.Secure, Now: opt.Now})
		if err != nil {
			return nil, err
		}
		opt.Browser = b
	}
	return &Manager{State: opt.Browser, st: st, opt: opt}, nil
}

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.opt.Now() }

const keySession = "sso:"

// Load returns the live session the request's cookie names.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(m.CookieName())
	if err != nil {
		return nil, ErrNoSession
	}
	var id string
	if err := m.Decode(m.CookieName(), c.Value, &id); err != nil {
		return nil, ErrNoSession
	}
	return m.Get(r.Context(), id)
}

// Get returns the live session with the given id.
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	if id == "" || len(id) > 128 {
		return nil, ErrNoSession
	}
	b, err := m.st.Get(ctx, keySession+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	s, err := decode(id, b)
	if err != nil {
		return nil, err
	}
	if !m.live(s, m.opt.Now()) {
		return nil, ErrNoSession
	}
	return s, nil
}

// decode reads the record of session id.
func decode(id string, b []byte) (*Session, error) {
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding session: %w", err)
	}
	s.ID, s.raw = id, b
	return &s, nil
}

func (m *Manager) live(s *Session, now time.Time) bool {
	return !now.After(s.Expires) && now.Sub(s.LastSeen) <= m.opt.Idle
}

// expiry is when s ends unless it is used again.
func (m *Manager) expiry(s *Session) time.Time {
	idle := s.LastSeen.Add(m.opt.Idle)
	if idle.Before(s.Expires) {
		return idle
	}
	return s.Expires
}

// New returns a fresh, unsaved session for subject.
func (m *Manager) New(subject string) *Session {
	now := m.opt.Now().Truncate(time.Second)
	return &Session{
		ID:       base64.RawURLEncoding.EncodeToString(random(32)),
		Subject:  subject,
		Created:  now,
		LastSeen: now,
		Expires:  now.Add(m.opt.Lifetime),
	}
}

// ErrChanged: the session changed (or ended) since it was loaded; load
// it again, or use Modify.
var ErrChanged = errors.New("session changed since it was loaded")

// Save stores s, with its indexes, and, when w is not nil, sets its
// cookie. A new session (from New) is created; a loaded one is written
// only if it is still exactly as loaded (else ErrChanged, or ErrNoSession
// when it ended), so a logout in between is never undone.
func (m *Manager) Save(ctx context.Context, w http.ResponseWriter, s *Session) error {
	now := m.opt.Now()
	// Whole seconds are precise enough for every use of a session's
	// times (auth_time is in seconds) and keep the record short.
	s.LastSeen = now.Truncate(time.Second)
	exp := m.expiry(s)
	if !exp.After(now) {
		return ErrNoSession
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	// The record outlives the session by metaGrace so that its end can
	// still be announced to its clients and gates (Meta); Get refuses it
	// once its time is over.
	ttl := exp.Sub(now) + metaGrace
	write := store.Create(keySession+s.ID, b, ttl)
	if s.raw != nil {
		write = store.Put(keySession+s.ID, b, ttl)
	}
	ops := []store.Op{
		write,
		store.SetAdd(setBySubject+s.Subject, s.ID),
		store.SetAdd(bucketName(exp), s.ID),
	}
	if s.raw != nil {
		ops = append([]store.Op{store.Match(keySession+s.ID, s.raw)}, ops...)
	}
	switch err := m.st.Apply(ctx, ops...); {
	case errors.Is(err, store.ErrConflict):
		if _, gerr := m.Get(ctx, s.ID); errors.Is(gerr, ErrNoSession) {
			return ErrNoSession
		}
		return ErrChanged
	case errors.Is(err, store.ErrExists):
		return ErrChanged
	case err != nil:
		return fmt.Errorf("saving session: %w", err)
	}
	s.raw = b
	if w != nil {
		v, err := m.Encode(m.CookieName(), s.ID)
		if err != nil {
			return fmt.Errorf("encoding session cookie: %w", err)
		}
		m.SetCookie(w, m.CookieName(), v, 0)
	}
	return nil
}

// Modify applies fn to the live session id and saves it, loading it again
// when another change came first; fn may run more than once. It returns
// ErrNoSession when the session ended.
func (m *Manager) Modify(ctx context.Context, w http.ResponseWriter, id string, fn func(*Session) error) (*Session, error) {
	for try := range modifyTries {
		s, err := m.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		before := s.raw
		if err := fn(s); err != nil {
			return nil, err
		}
		// Nothing changed and it was seen lately: no write, so that many
		// requests of one session at once (tabs, a page's assets through
		// a gate) do not race to write the same record.
		if after, err := json.Marshal(s); err == nil && bytes.Equal(after, before) && m.opt.Now().Sub(s.LastSeen) < touchEvery {
			return s, nil
		}
		if err := m.Save(ctx, w, s); !errors.Is(err, ErrChanged) {
			return s, err
		}
		// Another writer won: wait a little (more each time, jittered)
		// before reading it again.
		select {
		case <-time.After(time.Duration(mrand.Int64N(int64(time.Millisecond) << min(try, 5)))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("saving session: %w", ErrChanged)
}

const (
	// modifyTries bounds Modify's attempts against concurrent writers.
	modifyTries = 16
	// touchEvery: a session is written again to record that it was seen
	// (and to extend its idle time) at most this often when nothing else
	// changes.
	touchEvery = time.Minute
)

// ClearCookie deletes the session cookie in the browser.
func (m *Manager) ClearCookie(w http.ResponseWriter) {
	m.SetCookie(w, m.CookieName(), "", -1)
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

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
