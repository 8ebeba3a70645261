package session

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// newStore returns a memstore on the fake clock c (so store TTLs move
// with it too).
func newStore(t *testing.T, c *clock) *memstore.Store {
	t.Helper()
	st := memstore.New()
	if c != nil {
		st.Now = c.now
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func setup(t *testing.T, secure bool) (*Manager, *clock, *memstore.Store) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	st := newStore(t, c)
	m, err := NewManager(context.Background(), st, Options{Secure: secure, Idle: time.Hour, Lifetime: 10 * time.Hour, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return m, c, st
}

// save saves s and returns the one cookie set.
func save(t *testing.T, m *Manager, s *Session) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if err := m.Save(context.Background(), w, s); err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Save set cookies %v, want one", cookies)
	}
	return cookies[0]
}

func requestWith(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// roundTrip saves s and returns a request carrying its cookie.
func roundTrip(t *testing.T, m *Manager, s *Session) (*http.Request, *http.Cookie) {
	t.Helper()
	c := save(t, m, s)
	return requestWith(c), c
}

func TestKeysPersistedAndShared(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, nil)
	if _, err := st.Get(ctx, keyCookieKeys); err == nil {
		t.Fatal("fresh store already has keys")
	}
	m1, err := NewManager(ctx, st, Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.Get(ctx, keyCookieKeys)
	if err != nil {
		t.Fatalf("keys not saved in the store: %v", err)
	}
	var k cookieKeys
	if err := json.Unmarshal(raw, &k); err != nil || len(k.Hash) != 64 || len(k.Block) != 32 || len(k.CSRF) != 32 {
		t.Fatalf("stored keys %s: %v", raw, err)
	}
	// A second manager (another instance, or after a restart) reuses them.
	m2, err := NewManager(ctx, st, Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := st.Get(ctx, keyCookieKeys); string(again) != string(raw) {
		t.Fatal("second manager replaced the keys")
	}
	s := m1.New("sub")
	r, _ := roundTrip(t, m1, s)
	if got, err := m2.Load(r); err != nil || got.ID != s.ID {
		t.Fatalf("second manager cannot read the first's cookie: %v", err)
	}
	if tok := m1.CSRFToken("b", "p"); !m2.CheckCSRF("b", "p", tok) {
		t.Fatal("second manager refuses the first's CSRF token")
	}
	if m1.Sign("x") != m2.Sign("x") {
		t.Fatal("Sign differs between managers on one store")
	}
	// A manager on another store (another deployment) has other keys.
	other, err := NewManager(ctx, newStore(t, nil), Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("foreign keys: %v", err)
	}
	if other.CheckCSRF("b", "p", m1.CSRFToken("b", "p")) || other.Sign("x") == m1.Sign("x") {
		t.Fatal("another deployment accepts this one's tokens")
	}
}

func TestKeysRaceAndCorruption(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, nil)
	const n = 8
	ms := make([]*Manager, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := NewManager(ctx, st, Options{})
			if err != nil {
				t.Error(err)
			}
			ms[i] = m
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	tok := ms[0].CSRFToken("b", "p")
	for i, m := range ms {
		if !m.CheckCSRF("b", "p", tok) {
			t.Fatalf("manager %d started concurrently has other keys", i)
		}
	}
	for _, bad := range []string{"not json", `{"hash":"AA==","block":"AA==","csrf":"AA=="}`, `{}`} {
		if err := st.Set(ctx, keyCookieKeys, []byte(bad), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := NewManager(ctx, st, Options{}); err == nil {
			t.Errorf("corrupt keys %q accepted", bad)
		}
	}
}

func TestDefaults(t *testing.T) {
	st := newStore(t, nil)
	m, err := NewManager(context.Background(), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.opt.Idle != 24*time.Hour || m.opt.Lifetime != 30*24*time.Hour || m.CookieName() != "gatehouse" || m.Secure() {
		t.Fatalf("defaults %+v", m.opt)
	}
	if d := time.Since(m.Now()); d < 0 || d > time.Minute {
		t.Fatalf("default clock is off by %v", d)
	}
	s := m.New("x")
	if !s.Expires.Equal(s.Created.Add(30*24*time.Hour)) || !s.LastSeen.Equal(s.Created) {
		t.Fatalf("new session times %+v", s)
	}
	named, _ := NewManager(context.Background(), st, Options{CookieName: "sso", Secure: true})
	if named.CookieName() != "sso" {
		t.Fatalf("custom cookie name %q", named.CookieName())
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, c, _ := setup(t, true)
	s := m.New("sub-1")
	if len(s.ID) < 43 {
		t.Fatalf("session id %q shorter than 256 bits", s.ID)
	}
	if s2 := m.New("sub-1"); s2.ID == s.ID {
		t.Fatal("two sessions share an id")
	}
	at := c.now()
	s.Pass(Passed{Module: "password", Kind: "password", Levels: []string{"1"}, AMR: []string{"pwd"}, At: at})
	s.AddClient("wiki")
	c.add(time.Minute)
	r, ck := roundTrip(t, m, s)
	if strings.Contains(ck.Value, s.ID) {
		t.Fatal("cookie carries the raw session id")
	}
	if !s.LastSeen.Equal(c.now()) {
		t.Fatalf("Save did not refresh LastSeen: %v", s.LastSeen)
	}
	got, err := m.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != s.ID || got.Subject != "sub-1" || len(got.Passed) != 1 || got.Passed[0].Module != "password" ||
		!got.Passed[0].At.Equal(at) || !slices.Equal(got.Clients, []string{"wiki"}) || !got.Expires.Equal(s.Expires) ||
		!got.AuthTime().Equal(at) {
		t.Fatalf("Load = %+v, want %+v", got, s)
	}
	if g2, err := m.Get(context.Background(), s.ID); err != nil || g2.ID != s.ID {
		t.Fatalf("Get: %v", err)
	}
	// No cookie at all.
	if got, err := m.Load(httptest.NewRequest(http.MethodGet, "/", nil)); got != nil || !errors.Is(err, ErrNoSession) {
		t.Fatalf("no cookie: %v %v", got, err)
	}
	// Save with a nil writer stores without a cookie.
	s3 := m.New("sub-3")
	if err := m.Save(context.Background(), nil, s3); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(context.Background(), s3.ID); err != nil {
		t.Fatalf("saved without writer: %v", err)
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, secure := range []bool{true, false} {
		m, _, _ := setup(t, secure)
		ck := save(t, m, m.New("x"))
		wantName := "gatehouse"
		if secure {
			wantName = "__Host-gatehouse"
		}
		if ck.Name != wantName || ck.Secure != secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode ||
			ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 0 || !ck.Expires.IsZero() {
			t.Errorf("secure=%v: session cookie %+v", secure, ck)
		}
		w := httptest.NewRecorder()
		m.Browser(w, httptest.NewRequest(http.MethodGet, "/", nil))
		bc := w.Result().Cookies()
		if len(bc) != 1 || bc[0].Name != wantName+"-b" || bc[0].Secure != secure || !bc[0].HttpOnly ||
			bc[0].SameSite != http.SameSiteLaxMode || bc[0].Path != "/" || bc[0].Domain != "" {
			t.Errorf("secure=%v: browser cookie %+v", secure, bc)
		}
	}
}

func TestTamperedCookies(t *testing.T) {
	m, _, _ := setup(t, true)
	s := m.New("sub")
	_, ck := roundTrip(t, m, s)
	wb := httptest.NewRecorder()
	m.Browser(wb, httptest.NewRequest(http.MethodGet, "/", nil))
	browserCookie := wb.Result().Cookies()[0]
	flip := []byte(ck.Value)
	flip[len(flip)/2] ^= 1
	for name, v := range map[string]string{
		"tampered end":     ck.Value[:len(ck.Value)-3] + "abc",
		"bit flipped":      string(flip),
		"truncated":        ck.Value[:len(ck.Value)/2],
		"garbage":          "not-a-cookie",
		"empty":            "",
		"raw id":           s.ID,
		"browser cookie":   browserCookie.Value, // valid MAC, but for another cookie name
		"appended garbage": ck.Value + "AAAA",
	} {
		r := requestWith(&http.Cookie{Name: ck.Name, Value: v})
		got, err := m.Load(r)
		if got != nil || !errors.Is(err, ErrNoSession) {
			t.Errorf("%s cookie: Load = %v, %v; want nil, ErrNoSession", name, got, err)
		}
	}
	// The cookie under another name is not the session cookie.
	if _, err := m.Load(requestWith(&http.Cookie{Name: "gatehouse", Value: ck.Value})); !errors.Is(err, ErrNoSession) {
		t.Fatalf("cookie under the wrong name: %v", err)
	}
	// The untouched cookie still works.
	if _, err := m.Load(requestWith(ck)); err != nil {
		t.Fatal(err)
	}
}

func TestIdleExpiry(t *testing.T) {
	m, c, _ := setup(t, true)
	s := m.New("sub")
	r, _ := roundTrip(t, m, s)
	c.add(59 * time.Minute)
	got, err := m.Load(r)
	if err != nil {
		t.Fatalf("within idle: %v", err)
	}
	// Use (Save) restarts the idle clock.
	if err := m.Save(context.Background(), nil, got); err != nil {
		t.Fatal(err)
	}
	c.add(59 * time.Minute)
	if _, err := m.Load(r); err != nil {
		t.Fatalf("59m after last use: %v", err)
	}
	c.add(2 * time.Minute)
	if got, err := m.Load(r); got != nil || !errors.Is(err, ErrNoSession) {
		t.Fatalf("past idle: %v %v", got, err)
	}
	if _, err := m.Get(context.Background(), s.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Get past idle: %v", err)
	}
}

// The manager checks idle itself, not only through the store's TTL (a
// backend may sweep late).
func TestIdleExpiryWithoutStoreTTL(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	st := newStore(t, nil) // store on the real clock: its TTLs do not move
	m, err := NewManager(context.Background(), st, Options{Idle: time.Hour, Lifetime: 10 * time.Hour, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := roundTrip(t, m, m.New("sub"))
	c.add(time.Hour)
	if _, err := m.Load(r); err != nil {
		t.Fatalf("exactly idle: %v", err)
	}
	c.add(time.Second)
	if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past idle: %v", err)
	}
	// Lifetime likewise.
	r2, _ := roundTrip(t, m, m.New("sub"))
	for range 11 {
		got, err := m.Load(r2)
		if err != nil {
			break
		}
		c.add(59 * time.Minute)
		got.LastSeen = c.now()
		b, _ := json.Marshal(got)
		st.Set(context.Background(), keySession+got.ID, b, 0) // keep idle fresh behind Save's back
	}
	if _, err := m.Load(r2); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past lifetime: %v", err)
	}
}

func TestLifetimeExpiry(t *testing.T) {
	m, c, _ := setup(t, true)
	s := m.New("sub")
	r, _ := roundTrip(t, m, s)
	// Used every 59 minutes: idle never ends it, the lifetime (10h) does.
	for i := range 10 {
		got, err := m.Load(r)
		if err != nil {
			t.Fatalf("use %d at +%v: %v", i, c.now().Sub(s.Created), err)
		}
		if err := m.Save(context.Background(), nil, got); err != nil {
			t.Fatalf("save %d at +%v: %v", i, c.now().Sub(s.Created), err)
		}
		c.add(59 * time.Minute)
	}
	// Now at +9h50m: still alive, but its store record must not outlive
	// the lifetime.
	got, err := m.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(context.Background(), nil, got); err != nil {
		t.Fatal(err)
	}
	c.add(11 * time.Minute) // +10h1m: used 11 minutes ago, but over the lifetime
	if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("past lifetime: %v", err)
	}
	// Saving a session past its lifetime is refused.
	if err := m.Save(context.Background(), httptest.NewRecorder(), got); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Save past lifetime: %v", err)
	}
}

func TestDestroy(t *testing.T) {
	for _, secure := range []bool{true, false} {
		m, _, _ := setup(t, secure)
		s := m.New("sub")
		r, ck := roundTrip(t, m, s)
		w := httptest.NewRecorder()
		if err := m.Destroy(context.Background(), w, s.ID); err != nil {
			t.Fatal(err)
		}
		cs := w.Result().Cookies()
		if len(cs) != 1 || cs[0].Name != ck.Name || cs[0].MaxAge >= 0 || cs[0].Value != "" || cs[0].Path != "/" ||
			cs[0].Secure != secure || !cs[0].HttpOnly {
			t.Fatalf("secure=%v: cookie not cleared: %+v", secure, cs)
		}
		if got, err := m.Load(r); got != nil || !errors.Is(err, ErrNoSession) {
			t.Fatalf("after Destroy: %v %v", got, err)
		}
		// Destroying again, or without a writer, is fine.
		if err := m.Destroy(context.Background(), nil, s.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBrowser(t *testing.T) {
	m, _, _ := setup(t, true)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "other", Value: "keep-me"})
	id := m.Browser(w, r)
	if len(id) < 24 {
		t.Fatalf("browser id %q too short", id)
	}
	if again := m.Browser(w, r); again != id {
		t.Fatal("two ids for one request")
	}
	if len(w.Result().Cookies()) != 1 {
		t.Fatalf("second call in one request set another cookie: %v", w.Result().Cookies())
	}
	if c, err := r.Cookie("other"); err != nil || c.Value != "keep-me" {
		t.Fatal("Browser dropped the request's other cookies")
	}
	bc := w.Result().Cookies()[0]
	// Later requests with the cookie get the same id and no new cookie.
	for range 3 {
		w2 := httptest.NewRecorder()
		if got := m.Browser(w2, requestWith(bc)); got != id {
			t.Fatalf("browser id not stable: %q vs %q", got, id)
		}
		if len(w2.Result().Cookies()) != 0 {
			t.Fatal("a known browser got a new cookie")
		}
	}
	// Another manager on the same store knows the browser too.
	m2, _ := NewManager(context.Background(), m.st, m.opt)
	if got := m2.Browser(httptest.NewRecorder(), requestWith(bc)); got != id {
		t.Fatal("browser id not shared between managers")
	}
	// A forged or foreign browser cookie gets a fresh id.
	w3 := httptest.NewRecorder()
	forged := m.Browser(w3, requestWith(&http.Cookie{Name: bc.Name, Value: "forged"}))
	if forged == id || forged == "" || len(w3.Result().Cookies()) != 1 {
		t.Fatalf("forged browser cookie: id %q, cookies %v", forged, w3.Result().Cookies())
	}
	// A fresh browser gets another id.
	if other := m.Browser(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)); other == id {
		t.Fatal("two browsers share an id")
	}
}

func TestCSRF(t *testing.T) {
	m, _, _ := setup(t, true)
	tok := m.CSRFToken("browser-1", "login:a1")
	if tok == "" || tok != m.CSRFToken("browser-1", "login:a1") {
		t.Fatal("token is not deterministic")
	}
	if !m.CheckCSRF("browser-1", "login:a1", tok) {
		t.Fatal("right token refused")
	}
	for _, c := range []struct{ name, b, p, tok string }{
		{"other browser", "browser-2", "login:a1", tok},
		{"other purpose", "browser-1", "login:a2", tok},
		{"empty token", "browser-1", "login:a1", ""},
		{"empty browser", "", "login:a1", tok},
		{"longer token", "browser-1", "login:a1", tok + "x"},
		{"shorter token", "browser-1", "login:a1", tok[:len(tok)-1]},
		{"other case", "browser-1", "login:a1", strings.ToUpper(tok)},
		// The separator keeps browser and purpose apart.
		{"shifted boundary", "browser-1\x00login", ":a1", tok},
		{"signature as token", "browser-1", "login:a1", m.Sign("browser-1\x00login:a1")},
	} {
		if m.CheckCSRF(c.b, c.p, c.tok) {
			t.Errorf("%s: CheckCSRF(%q,%q,%q) accepted", c.name, c.b, c.p, c.tok)
		}
	}
	// An empty browser never passes, even with its own token.
	if m.CheckCSRF("", "p", m.CSRFToken("", "p")) {
		t.Fatal("empty browser accepted")
	}
}

func TestSessionHelpers(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var s Session
	if !s.AuthTime().IsZero() {
		t.Fatal("AuthTime of nothing passed")
	}
	s.Pass(Passed{Module: "pw", At: t0})
	s.Pass(Passed{Module: "otp", At: t0.Add(time.Minute)})
	s.Pass(Passed{Module: "pw", At: t0.Add(2 * time.Minute)})
	if len(s.Passed) != 2 || s.Passed[1].Module != "pw" || !s.Passed[1].At.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("Pass did not replace: %+v", s.Passed)
	}
	if !s.AuthTime().Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("AuthTime %v", s.AuthTime())
	}
	s.AddClient("a")
	s.AddClient("b")
	s.AddClient("a")
	if !slices.Equal(s.Clients, []string{"a", "b"}) {
		t.Fatalf("clients %v", s.Clients)
	}
}

func TestListForAndEnd(t *testing.T) {
	m, c, st := setup(t, true)
	ctx := context.Background()
	var ended []string
	m.SetOnEnd(func(_ context.Context, s *Session) { ended = append(ended, s.ID) })
	s1 := m.New("alice")
	m.Save(ctx, nil, s1)
	c.add(time.Minute)
	s2 := m.New("alice")
	m.Save(ctx, nil, s2)
	m.Save(ctx, nil, m.New("bob"))
	list, err := m.ListFor(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].ID != s2.ID || list[1].ID != s1.ID {
		t.Fatalf("ListFor = %v, %v; want newest first", list, err)
	}
	if list, _ := m.ListFor(ctx, "nobody"); len(list) != 0 {
		t.Fatalf("ListFor nobody = %v", list)
	}
	r, _ := roundTrip(t, m, s2)
	w := httptest.NewRecorder()
	if err := m.End(ctx, w, s2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ended, []string{s2.ID}) {
		t.Fatalf("end hook saw %v", ended)
	}
	if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Fatalf("End did not clear the cookie: %v", cs)
	}
	if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after End: %v", err)
	}
	if list, _ := m.ListFor(ctx, "alice"); len(list) != 1 || list[0].ID != s1.ID {
		t.Fatalf("ListFor after End = %v", list)
	}
	for _, k := range []string{keySession + s2.ID, keyMeta + s2.ID} {
		if _, err := st.Get(ctx, k); err == nil {
			t.Errorf("%s left behind by End", k)
		}
	}
	if members, _ := st.SetMembers(ctx, setLive); slices.Contains(members, s2.ID) {
		t.Error("ended session still in the live set")
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
	if list, _ := m.ListFor(ctx, "sub-old"); len(list) != 0 {
		t.Fatal("swept session still listed")
	}
}
