package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
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
		m.BrowserID(w, httptest.NewRequest(http.MethodGet, "/", nil))
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
	m.BrowserID(wb, httptest.NewRequest(http.MethodGet, "/", nil))
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

func TestRemoveAndClearCookie(t *testing.T) {
	for _, secure := range []bool{true, false} {
		m, _, _ := setup(t, secure)
		s := m.New("sub")
		r, ck := roundTrip(t, m, s)
		w := httptest.NewRecorder()
		if err := m.Remove(context.Background(), s.ID, s.Subject); err != nil {
			t.Fatal(err)
		}
		m.ClearCookie(w)
		cs := w.Result().Cookies()
		if len(cs) != 1 || cs[0].Name != ck.Name || cs[0].MaxAge >= 0 || cs[0].Value != "" || cs[0].Path != "/" ||
			cs[0].Secure != secure || !cs[0].HttpOnly {
			t.Fatalf("secure=%v: cookie not cleared: %+v", secure, cs)
		}
		if got, err := m.Load(r); got != nil || !errors.Is(err, ErrNoSession) {
			t.Fatalf("after Destroy: %v %v", got, err)
		}
		// Removing again is fine.
		if err := m.Remove(context.Background(), s.ID, s.Subject); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBrowser(t *testing.T) {
	m, _, _ := setup(t, true)
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "other", Value: "keep-me"})
	id := m.BrowserID(w, r)
	if len(id) < 24 {
		t.Fatalf("browser id %q too short", id)
	}
	if again := m.BrowserID(w, r); again != id {
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
		if got := m.BrowserID(w2, requestWith(bc)); got != id {
			t.Fatalf("browser id not stable: %q vs %q", got, id)
		}
		if len(w2.Result().Cookies()) != 0 {
			t.Fatal("a known browser got a new cookie")
		}
	}
	// Another manager on the same store knows the browser too.
	m2, _ := NewManager(context.Background(), m.st, m.opt)
	if got := m2.BrowserID(httptest.NewRecorder(), requestWith(bc)); got != id {
		t.Fatal("browser id not shared between managers")
	}
	// A forged or foreign browser cookie gets a fresh id.
	w3 := httptest.NewRecorder()
	forged := m.BrowserID(w3, requestWith(&http.Cookie{Name: bc.Name, Value: "forged"}))
	if forged == id || forged == "" || len(w3.Result().Cookies()) != 1 {
		t.Fatalf("forged browser cookie: id %q, cookies %v", forged, w3.Result().Cookies())
	}
	// A fresh browser gets another id.
	if other := m.BrowserID(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)); other == id {
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
		{"signature as token", "browser-1", "login:a1", m.Sign("csrf", "browser-1\x00login:a1")},
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

func TestListForAndRemove(t *testing.T) {
	m, c, st := setup(t, true)
	ctx := context.Background()
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
	if md, err := m.Meta(ctx, s2.ID); err != nil || md.Subject != "alice" || md.Expiry.IsZero() {
		t.Fatalf("Meta = %+v, %v", md, err)
	}
	if err := m.Remove(ctx, s2.ID, s2.Subject); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, s2.ID, s2.Subject); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if _, err := m.Load(r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after Remove: %v", err)
	}
	if _, err := m.Meta(ctx, s2.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("meta after Remove: %v", err)
	}
	if list, _ := m.ListFor(ctx, "alice"); len(list) != 1 || list[0].ID != s1.ID {
		t.Fatalf("ListFor after Remove = %v", list)
	}
	for _, k := range []string{keySession + s2.ID, keyMeta + s2.ID} {
		if _, err := st.Get(ctx, k); err == nil {
			t.Errorf("%s left behind by Remove", k)
		}
	}
	if members, _ := st.SetMembers(ctx, setBySubject+"alice"); slices.Contains(members, s2.ID) {
		t.Error("removed session still in the subject index")
	}
	w := httptest.NewRecorder()
	m.ClearCookie(w)
	if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Name != m.CookieName() {
		t.Fatalf("ClearCookie: %v", cs)
	}
}

func TestExpiredIndex(t *testing.T) {
	m, c, st := setup(t, true) // idle 1h, lifetime 10h
	ctx := context.Background()
	// The first walk starts the index's cursor now.
	if ids, cur, err := m.Expired(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("first walk: %v %v", ids, err)
	} else if err := m.Done(ctx, cur); err != nil {
		t.Fatal(err)
	}
	old := m.New("sub-old")
	old.AddClient("wiki")
	m.Save(ctx, nil, old)
	c.add(30 * time.Minute)
	used := m.New("sub-used")
	m.Save(ctx, nil, used)
	gone := m.New("sub-gone")
	m.Save(ctx, nil, gone)
	if err := m.Remove(ctx, gone.ID, gone.Subject); err != nil {
		t.Fatal(err)
	}
	c.add(25 * time.Minute)
	m.Save(ctx, nil, used)  // used: its expiry moves 25 minutes on
	c.add(10 * time.Minute) // old: idle 65m > 1h; used: 10m; gone: removed
	ids, cur, err := m.Expired(ctx)
	if err != nil || !slices.Equal(ids, []string{old.ID}) {
		t.Fatalf("Expired = %v, %v; want only %s", ids, err, old.ID)
	}
	if md, err := m.Meta(ctx, old.ID); err != nil || md.Subject != "sub-old" || !slices.Equal(md.Clients, []string{"wiki"}) {
		t.Fatalf("an expired session's meta: %+v %v", md, err)
	}
	// Until Done, the same minutes are walked again (a failed sweep
	// loses nothing).
	if again, _, _ := m.Expired(ctx); !slices.Equal(again, ids) {
		t.Fatalf("walk after no Done: %v", again)
	}
	if err := m.Remove(ctx, old.ID, old.Subject); err != nil {
		t.Fatal(err)
	}
	if err := m.Done(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if ids, _, _ := m.Expired(ctx); len(ids) != 0 {
		t.Fatalf("second walk found %v", ids)
	}
	// The used session expires 1h after its last use, and is found then.
	c.add(time.Hour)
	ids, cur, err = m.Expired(ctx)
	if err != nil || !slices.Equal(ids, []string{used.ID}) {
		t.Fatalf("later walk = %v, %v", ids, err)
	}
	m.Done(ctx, cur)
	// Walked minutes are dropped: the index does not grow without end.
	for minute := cur - 200; minute <= cur; minute++ {
		if members, _ := st.SetMembers(ctx, bucketPrefix+strconv.FormatInt(minute, 10)); len(members) != 0 {
			t.Fatalf("minute %d still indexed: %v", minute, members)
		}
	}
}

func TestExpiredMigratesTheLegacyLiveSet(t *testing.T) {
	m, c, st := setup(t, true)
	ctx := context.Background()
	s := m.New("sub")
	m.Save(ctx, nil, s)
	// A session indexed by the previous version only.
	st.SetRemove(ctx, bucketName(m.expiry(s)), s.ID)
	st.SetAdd(ctx, setLegacyLive, s.ID)
	if _, cur, err := m.Expired(ctx); err != nil {
		t.Fatal(err)
	} else {
		m.Done(ctx, cur)
	}
	if members, _ := st.SetMembers(ctx, setLegacyLive); len(members) != 0 {
		t.Fatalf("legacy set left: %v", members)
	}
	c.add(2 * time.Hour)
	if ids, _, err := m.Expired(ctx); err != nil || !slices.Equal(ids, []string{s.ID}) {
		t.Fatalf("migrated session not found expired: %v %v", ids, err)
	}
}

// A session loaded before a logout cannot be written back after it: the
// logout would be undone (a stolen cookie kept alive).
func TestSaveDoesNotUndoARemove(t *testing.T) {
	m, _, st := setup(t, true)
	ctx := context.Background()
	s := m.New("alice")
	if err := m.Save(ctx, nil, s); err != nil {
		t.Fatal(err)
	}
	loaded, err := m.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, s.ID, s.Subject); err != nil {
		t.Fatal(err)
	}
	loaded.AddClient("late")
	if err := m.Save(ctx, nil, loaded); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Save after Remove: %v, want ErrNoSession", err)
	}
	if _, err := m.Get(ctx, s.ID); !errors.Is(err, ErrNoSession) {
		t.Fatal("the removed session is live again")
	}
	if _, err := st.Get(ctx, keyMeta+s.ID); err == nil {
		t.Fatal("meta written back")
	}
	if _, err := m.Modify(ctx, nil, s.ID, func(*Session) error { return nil }); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Modify of a removed session: %v", err)
	}
	// Two changes from the same load: the second is told, Modify retries.
	s2 := m.New("bob")
	m.Save(ctx, nil, s2)
	a, _ := m.Get(ctx, s2.ID)
	b, _ := m.Get(ctx, s2.ID)
	a.AddClient("a")
	if err := m.Save(ctx, nil, a); err != nil {
		t.Fatal(err)
	}
	b.AddClient("b")
	if err := m.Save(ctx, nil, b); !errors.Is(err, ErrChanged) {
		t.Fatalf("stale save: %v, want ErrChanged", err)
	}
	if _, err := m.Modify(ctx, nil, s2.ID, func(x *Session) error { x.AddClient("b"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(ctx, s2.ID); !slices.Equal(got.Clients, []string{"a", "b"}) {
		t.Fatalf("clients %v", got.Clients)
	}
	// A new session cannot overwrite an existing one with the same id.
	dup := *s2
	dup.raw = nil
	if err := m.Save(ctx, nil, &dup); !errors.Is(err, ErrChanged) {
		t.Fatalf("new session over an existing id: %v", err)
	}
}

// A session saved by the version that kept a separate meta record can
// still be logged out after its own record is gone; a record of that
// version (with its id inside) still loads.
func TestLegacyRecords(t *testing.T) {
	m, _, st := setup(t, true)
	ctx := context.Background()
	md, _ := json.Marshal(Meta{Subject: "carol", Clients: []string{"wiki"}, Expiry: m.Now()})
	st.Set(ctx, keyMeta+"old-id", md, time.Hour)
	if got, err := m.Meta(ctx, "old-id"); err != nil || got.Subject != "carol" || !slices.Equal(got.Clients, []string{"wiki"}) {
		t.Fatalf("legacy meta: %+v %v", got, err)
	}
	s := m.New("dave")
	rec, _ := json.Marshal(s)
	var withID map[string]any
	json.Unmarshal(rec, &withID)
	if _, ok := withID["id"]; ok {
		t.Fatalf("the record repeats its key: %s", rec)
	}
	withID["id"] = "something else"
	rec, _ = json.Marshal(withID)
	st.Set(ctx, keySession+"legacy-id", rec, time.Hour)
	if got, err := m.Get(ctx, "legacy-id"); err != nil || got.ID != "legacy-id" || got.Subject != "dave" {
		t.Fatalf("legacy record: %+v %v", got, err)
	}
}

// An ended session's record stays a day for the sweep (Meta), never
// loads, and is gone after that day.
func TestEndedRecordOutlivesForTheSweepOnly(t *testing.T) {
	m, c, _ := setup(t, true) // idle 1h
	ctx := context.Background()
	s := m.New("erin")
	if err := m.Save(ctx, nil, s); err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Hour)
	if _, err := m.Get(ctx, s.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("an idle session loads: %v", err)
	}
	if md, err := m.Meta(ctx, s.ID); err != nil || md.Subject != "erin" {
		t.Fatalf("meta of the ended session: %+v %v", md, err)
	}
	c.add(metaGrace)
	if _, err := m.Meta(ctx, s.ID); !errors.Is(err, ErrNoSession) {
		t.Fatalf("meta a day after the end: %v", err)
	}
}

func TestStoredTimes(t *testing.T) {
	for _, tt := range []time.Time{{}, time.Unix(1_800_000_000, 0).UTC(), time.Unix(1_800_000_000, 1).UTC(),
		time.Unix(1_800_000_000, 250_000_000).UTC(), time.Unix(-5, 999_999_999).UTC()} {
		b, err := json.Marshal(stamp(tt))
		if err != nil {
			t.Fatal(err)
		}
		var back stamp
		if err := json.Unmarshal(b, &back); err != nil || !time.Time(back).Equal(tt) {
			t.Errorf("%v -> %s -> %v, %v", tt, b, time.Time(back), err)
		}
	}
	var legacy stamp
	if err := json.Unmarshal([]byte(`"2027-01-15T08:00:00.5Z"`), &legacy); err != nil || !time.Time(legacy).Equal(time.Date(2027, 1, 15, 8, 0, 0, 500_000_000, time.UTC)) {
		t.Errorf("RFC 3339 time: %v %v", time.Time(legacy), err)
	}
	for _, bad := range []string{`"x"`, `1.1234567890`, `1.-5`, `1e9`, `true`, `1.`} {
		var s stamp
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s accepted as %v", bad, time.Time(s))
		}
	}
	// A pass of a module whose kind is not its name keeps its kind, an
	// empty one too.
	for _, p := range []Passed{{Module: "password", Kind: "password"}, {Module: "corp", Kind: "oidc"}, {Module: "x"}} {
		b, _ := json.Marshal(p)
		var back Passed
		if err := json.Unmarshal(b, &back); err != nil || back.Kind != p.Kind || back.Module != p.Module {
			t.Errorf("%+v -> %s -> %+v", p, b, back)
		}
	}
}

// FuzzSessionRecord: any stored bytes either fail to decode or decode to
// a session that is stored and read back the same.
func FuzzSessionRecord(f *testing.F) {
	f.Add([]byte(`{"sub":"a","passed":[{"module":"password","levels":["1"],"at":1800000000.5}],"created":1800000000,"last_seen":1800000000,"expires":1800003600}`))
	f.Add([]byte(`{"id":"x","sub":"a","passed":[{"module":"m","kind":"k","levels":["1"],"at":"2027-01-15T08:00:00Z"}],"created":"2027-01-15T08:00:00Z","last_seen":"2027-01-15T08:00:00Z","expires":"2027-01-16T08:00:00Z","clients":["c"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode("id", b)
		if err != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", s, err)
		}
		back, err := decode("id", out)
		if err != nil {
			t.Fatalf("reading back %s: %v", out, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, out) {
			t.Fatalf("not stable: %s then %s", out, again)
		}
	})
}
