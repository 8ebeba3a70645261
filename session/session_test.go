package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store/embedded"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func setup(t *testing.T, secure bool) (*Manager, *clock, *embedded.Store) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	st, err := embedded.Open(filepath.Join(t.TempDir(), "s.db"), embedded.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := NewManager(context.Background(), st, Options{Secure: secure, Idle: time.Hour, Lifetime: 10 * time.Hour, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return m, c, st
}

// roundTrip saves s and returns a request carrying the cookies set.
func roundTrip(t *testing.T, m *Manager, s *Session) (*http.Request, *http.Cookie) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := m.Save(context.Background(), w, s); err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(cookies[0])
	return r, cookies[0]
}

func TestSaveLoad(t *testing.T) {
	m, _, _ := setup(t, true)
	s := m.New("sub-1")
	s.Pass(Passed{Module: "password", Levels: []string{"1"}, At: m.Now()})
	r, c := roundTrip(t, m, s)
	if c.Name != "__Host-gatehouse" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie attributes %+v", c)
	}
	if strings.Contains(c.Value, s.ID) {
		t.Fatal("cookie carries the raw session id")
	}
	got, err := m.Load(r)
	if err != nil || got.ID != s.ID || got.Subject != "sub-1" || len(got.Passed) != 1 {
		t.Fatalf("Load: %+v %v", got, err)
	}
	if len(s.ID) < 43 {
		t.Fatalf("session id %q shorter than 256 bits", s.ID)
	}
}

func TestInsecureDevCookie(t *testing.T) {
	m, _, _ := setup(t, false)
	_, c := roundTrip(t, m, m.New("x"))
	if c.Name != "gatehouse" || c.Secure {
		t.Fatalf("dev cookie %+v", c)
	}
}

func TestTamperedAndForeignCookies(t *testing.T) {
	m, _, st := setup(t, true)
	_, c := roundTrip(t, m, m.New("sub"))
	for name, v := range map[string]string{
		"tampered": c.Value[:len(c.Value)-3] + "abc",
		"garbage":  "not-a-cookie",
		"empty":    "",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: c.Name, Value: v})
		if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
			t.Errorf("%s cookie: %v", name, err)
		}
	}
	// A manager with other keys (another deployment) cannot read it.
	other, err := NewManager(context.Background(), freshStore(t), Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(c)
	if _, err := other.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("foreign keys: %v", err)
	}
	// A second manager on the same store shares the keys.
	same, _ := NewManager(context.Background(), st, Options{Secure: true})
	if _, err := same.Load(r); err != nil {
		t.Fatalf("same store: %v", err)
	}
}

func freshStore(t *testing.T) *embedded.Store {
	st, err := embedded.Open(filepath.Join(t.TempDir(), "o.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestExpiry(t *testing.T) {
	m, c, _ := setup(t, true)
	s := m.New("sub")
	r, _ := roundTrip(t, m, s)
	c.add(59 * time.Minute)
	if _, err := m.Load(r); err != nil {
		t.Fatalf("within idle: %v", err)
	}
	// Use keeps it alive (Save refreshes LastSeen) up to the lifetime.
	for range 9 {
		got, err := m.Load(r)
		if err != nil {
			t.Fatalf("at %v: %v", c.now(), err)
		}
		m.Save(context.Background(), nil, got)
		c.add(59 * time.Minute)
	}
	// Used 20 minutes ago (idle is fine) but older than its lifetime.
	got, err := m.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	m.Save(context.Background(), nil, got)
	c.add(20 * time.Minute)
	if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past lifetime: %v", err)
	}
	s2 := m.New("sub")
	r2, _ := roundTrip(t, m, s2)
	c.add(61 * time.Minute)
	if _, err := m.Load(r2); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past idle: %v", err)
	}
}

func TestDestroy(t *testing.T) {
	m, _, _ := setup(t, true)
	s := m.New("sub")
	r, _ := roundTrip(t, m, s)
	w := httptest.NewRecorder()
	if err := m.Destroy(context.Background(), w, s.ID); err != nil {
		t.Fatal(err)
	}
	if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Fatalf("cookie not cleared: %v", c)
	}
	if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after Destroy: %v", err)
	}
}

func TestBrowserAndCSRF(t *testing.T) {
	m, _, _ := setup(t, true)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	id := m.Browser(w, r)
	if again := m.Browser(w, r); again != id {
		t.Fatal("two ids for one request")
	}
	cs := w.Result().Cookies()
	if len(cs) == 0 || cs[0].Name != "__Host-gatehouse-b" || !cs[0].HttpOnly || !cs[0].Secure {
		t.Fatalf("browser cookie %v", cs)
	}
	r2 := httptest.NewRequest(http.MethodGet, "/", nil)
	r2.AddCookie(cs[0])
	if got := m.Browser(httptest.NewRecorder(), r2); got != id {
		t.Fatalf("browser id not stable: %q vs %q", got, id)
	}
	tok := m.CSRFToken(id, "login:a1")
	if !m.CheckCSRF(id, "login:a1", tok) {
		t.Fatal("right token refused")
	}
	for _, c := range []struct{ b, p, tok string }{{"other", "login:a1", tok}, {id, "login:a2", tok}, {id, "login:a1", ""}, {"", "login:a1", tok}, {id, "login:a1", tok + "x"}} {
		if m.CheckCSRF(c.b, c.p, c.tok) {
			t.Errorf("CheckCSRF(%q,%q,%q) accepted", c.b, c.p, c.tok)
		}
	}
}

func TestSweepExpiredEndsSessions(t *testing.T) {
	m, c, _ := setup(t, true)
	var ended []*Session
	m.SetOnEnd(func(_ context.Context, s *Session) { ended = append(ended, s) })
	ctx := context.Background()
	old := m.New("sub-old")
	old.AddClient("wiki")
	m.Save(ctx, nil, old)
	c.add(30 * time.Minute)
	live := m.New("sub-live")
	m.Save(ctx, nil, live)
	gone := m.New("sub-gone")
	m.Save(ctx, nil, gone)
	if err := m.End(ctx, nil, gone); err != nil {
		t.Fatal(err)
	}
	ended = nil
	c.add(40 * time.Minute) // old: idle 70m > 1h; live: 40m
	n, err := m.SweepExpired(ctx)
	if err != nil || n != 1 || len(ended) != 1 || ended[0].ID != old.ID || ended[0].Subject != "sub-old" || ended[0].Clients[0] != "wiki" {
		t.Fatalf("sweep: %d %v %+v", n, err, ended)
	}
	if n, _ := m.SweepExpired(ctx); n != 0 {
		t.Fatalf("second sweep found %d", n)
	}
	if list, _ := m.ListFor(ctx, "sub-live"); len(list) != 1 {
		t.Fatal("live session lost")
	}
}
