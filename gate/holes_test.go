package gate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/store"
)

// countingStore counts writes.
type countingStore struct {
	store.Store
	writes atomic.Int64
}

func (s *countingStore) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.Set(ctx, k, v, ttl)
}
func (s *countingStore) Create(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	s.writes.Add(1)
	return s.Store.Create(ctx, k, v, ttl)
}
func (s *countingStore) Update(ctx context.Context, k string, ttl time.Duration, fn func([]byte) ([]byte, error)) error {
	s.writes.Add(1)
	return s.Store.Update(ctx, k, ttl, fn)
}
func (s *countingStore) SetAdd(ctx context.Context, set string, m ...string) error {
	s.writes.Add(1)
	return s.Store.SetAdd(ctx, set, m...)
}
func (s *countingStore) Apply(ctx context.Context, ops ...store.Op) error {
	s.writes.Add(1)
	return s.Store.Apply(ctx, ops...)
}

// request builds a request for the raw request target as a client sends
// it, with Go's server parsing.
func request(method, host, target string) *http.Request {
	r := httptest.NewRequest(method, "http://placeholder/", nil)
	r.Host = host
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	r.URL, r.RequestURI = u, target
	r.Header.Set("Accept", "text/html")
	return r
}

// Hole 1: no spelling of a path gets past `bypass` to a protected one.
func TestBypassCannotBeEscaped(t *testing.T) {
	g := newTestGate(t, nil, Config{Policy: Policy{Bypass: []string{"/public/*", "/health"}}}, Site{})
	for _, target := range []string{
		"/public/../private/secret.txt", "/public/%2e%2e/private/secret.txt", "/public/%2E%2E/private/secret.txt",
		"/public/..%2fprivate%2fsecret.txt", "/public/..%2Fprivate/secret.txt", "/public//../private/secret.txt",
		"/public/.%2e/private/secret.txt", "/public/%252e%252e/private/secret.txt", "/public/..%5cprivate",
		"/public/..\\private", "/public;x/../private", "/public/./../private", "/public/%2e/../private",
		"/health/..", "/health/.", "/public/x/..", "/public/%00/../private", "/public/%c0%ae%c0%ae/private",
	} {
		w := httptest.NewRecorder()
		s, handled := g.Check(w, request(http.MethodGet, "app.localhost", target))
		if !handled {
			t.Errorf("%s passed the gate unauthenticated (session %v)", target, s)
			continue
		}
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", target, w.Code)
		}
	}
	// Plain spellings of bypassed paths still pass.
	for _, target := range []string{"/public/", "/public/a/b.css", "/health", "/public/caf%C3%A9", "/public/a%20b", "/public/100%25",
		"/public/~alice/x", "/public/v1/item:get", "/public/a~b~c"} {
		if _, handled := g.Check(httptest.NewRecorder(), request(http.MethodGet, "app.localhost", target)); handled {
			t.Errorf("%s: bypassed path refused", target)
		}
	}
}

// Hole 1: spellings that reach a route upstream under a weaker rule are
// refused wherever the gate sees them.
func TestNonCanonicalSpellingsAreRefused(t *testing.T) {
	g := newTestGate(t, nil, Config{}, Site{})
	for _, target := range []string{"/admin;x/panel", "/admin./x", "/admin%2e/x", "/%61dmin/x", "/admin%2fx", "/admin/x%00",
		"//admin/x", "/admin /x", "/admin%20/x", "/a/%252e%252e/b", "/a/%255c"} {
		w := httptest.NewRecorder()
		if _, handled := g.Check(w, request(http.MethodGet, "app.localhost", target)); !handled || w.Code != http.StatusBadRequest {
			t.Errorf("%s: handled=%v status %d, want 400", target, handled, w.Code)
		}
	}
}

// Hole 2: a Host header with another port (or name) is refused, and the
// redirect URI sent to the provider comes from the configuration.
func TestSpoofedHostIsRefused(t *testing.T) {
	f := newFakeIdP(t)
	g := newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate"}, Site{Origins: []string{"http://app.localhost:9002"}})
	for _, host := range []string{"app.localhost:4444", "app.localhost", "evil.example:9002", "app.localhost:9002.evil"} {
		for _, target := range []string{"/.gatehouse/login?return=/", "/page", "/.gatehouse/callback?state=x"} {
			w := httptest.NewRecorder()
			g.Check(w, request(http.MethodGet, host, target))
			if w.Code != http.StatusMisdirectedRequest {
				t.Errorf("Host %s %s: status %d, want 421", host, target, w.Code)
			}
		}
	}
	w := httptest.NewRecorder()
	g.Check(w, request(http.MethodGet, "app.localhost:9002", "/.gatehouse/login?return=/x"))
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || loc.Query().Get("redirect_uri") != "http://app.localhost:9002/.gatehouse/callback" {
		t.Fatalf("login: %d %s", w.Code, loc)
	}
}

// Hole 12: an unauthenticated navigation writes nothing to the store.
func TestUnauthenticatedGateRequestsWriteNothing(t *testing.T) {
	f := newFakeIdP(t)
	cs := &countingStore{Store: testStore(t)}
	g := newTestGate(t, cs, Config{Issuer: f.srv.URL, ClientID: "gate"}, Site{})
	before := cs.writes.Load()
	for i := range 100 {
		w := httptest.NewRecorder()
		g.Check(w, request(http.MethodGet, "app.localhost", "/page?i="+string(rune('a'+i%26))))
		if w.Code != http.StatusFound {
			t.Fatalf("navigation %d: %d", i, w.Code)
		}
	}
	if n := cs.writes.Load() - before; n != 0 {
		t.Fatalf("100 unauthenticated navigations made %d store writes", n)
	}
}

// Hole 8: every link the gate puts in a page stays on the site.
func TestPagesLinkOnlyToThisSite(t *testing.T) {
	g := newTestGate(t, nil, Config{}, Site{})
	for _, link := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example", "/%2F%2Fevil.example", "javascript:alert(1)"} {
		w := httptest.NewRecorder()
		g.notice(w, http.StatusOK, "t", "d", link, "Back")
		if strings.Contains(w.Body.String(), "evil") || strings.Contains(w.Body.String(), "javascript") {
			t.Errorf("notice links to %s:\n%s", link, w.Body)
		}
		w = httptest.NewRecorder()
		g.retryPage(w, http.StatusOK, "t", "d", link)
		if strings.Contains(w.Body.String(), "evil") || strings.Contains(w.Body.String(), "javascript") {
			t.Errorf("retry page links to %s", link)
		}
	}
	// A form posted to a path that starts with // never gets that far.
	w := httptest.NewRecorder()
	r := request(http.MethodPost, "app.localhost", "//evil.example/x")
	if _, handled := g.Check(w, r); !handled || w.Code != http.StatusBadRequest {
		t.Fatalf("POST //evil.example/x: %d", w.Code)
	}
}

// signedIn saves a gate session for origin and returns its cookie.
func signedIn(t *testing.T, g *Gate, origin, hook string) (*Session, *http.Cookie) {
	t.Helper()
	s := &Session{ID: randomString(16), SID: "sid-1", Origin: origin, Subject: "u1", Username: "alice",
		UpstreamLogout: hook, Expires: time.Now().Add(time.Hour), IDToken: "id-token"}
	if err := g.save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	g.cookies.set(rec, origin, s.ID, time.Hour)
	return s, rec.Result().Cookies()[0]
}

// Hole 9: a cross-site request to /.gatehouse/logout asks first; the
// form carries a CSRF token; the site's own link works at once.
func TestGateLogoutIsNotCrossSite(t *testing.T) {
	f := newFakeIdP(t)
	g := newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate"}, Site{})
	s, ck := signedIn(t, g, "http://app.localhost", "")
	bw := httptest.NewRecorder()
	g.cfg.Cookies.BrowserID(bw, httptest.NewRequest(http.MethodGet, "/", nil))
	bc := bw.Result().Cookies()[0]
	logoutReq := func(method, site string, form url.Values) *httptest.ResponseRecorder {
		var r *http.Request
		if form != nil {
			r = httptest.NewRequest(method, "http://app.localhost"+PathLogout, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(method, "http://app.localhost"+PathLogout, nil)
		}
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
			r.Header.Set("Sec-Fetch-Mode", "navigate")
			r.Header.Set("Sec-Fetch-Dest", "document")
		}
		if site == "same-origin-image" {
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.Header.Set("Sec-Fetch-Mode", "no-cors")
			r.Header.Set("Sec-Fetch-Dest", "image")
		}
		r.AddCookie(ck)
		r.AddCookie(bc)
		w := httptest.NewRecorder()
		g.Check(w, r)
		return w
	}
	alive := func() bool { x, _ := g.load(context.Background(), s.ID); return x != nil }
	for _, site := range []string{"cross-site", "same-site", "none", "same-origin-image", ""} {
		w := logoutReq(http.MethodGet, site, nil)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Do you want to sign out") || !alive() {
			t.Fatalf("GET with Sec-Fetch-Site %q: %d alive=%v", site, w.Code, alive())
		}
	}
	if w := logoutReq(http.MethodPost, "cross-site", url.Values{"csrf": {"forged"}}); w.Code != http.StatusForbidden || !alive() {
		t.Fatalf("POST with a forged token: %d alive=%v", w.Code, alive())
	}
	page := logoutReq(http.MethodGet, "cross-site", nil).Body.String()
	csrf := hiddenValue(page, "csrf")
	w := logoutReq(http.MethodPost, "same-origin", url.Values{"csrf": {csrf}})
	if w.Code != http.StatusFound || alive() || !strings.HasPrefix(w.Header().Get("Location"), f.srv.URL) {
		t.Fatalf("confirmed POST: %d alive=%v to %s", w.Code, alive(), w.Header().Get("Location"))
	}
	s, ck = signedIn(t, g, "http://app.localhost", "")
	if w := logoutReq(http.MethodGet, "same-origin", nil); w.Code != http.StatusFound || alive() {
		t.Fatalf("same-origin link: %d alive=%v", w.Code, alive())
	}
}

func hiddenValue(page, name string) string {
	i := strings.Index(page, `name="`+name+`" value="`)
	if i < 0 {
		return ""
	}
	rest := page[i+len(`name="`+name+`" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// Hole 6: the site where the user signs out gets its upstream logout
// notice too; and hole 11: a sign-out the store cannot record says so.
func TestGateLogoutTellsItsOwnUpstream(t *testing.T) {
	f := newFakeIdP(t)
	st := testStore(t)
	g := newTestGate(t, st, Config{Issuer: f.srv.URL, ClientID: "gate"}, Site{})
	_, ck := signedIn(t, g, "http://app.localhost", "http://127.0.0.1:1/hook")
	r := httptest.NewRequest(http.MethodGet, "http://app.localhost"+PathLogout, nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	r.AddCookie(ck)
	w := httptest.NewRecorder()
	g.Check(w, r)
	if w.Code != http.StatusFound {
		t.Fatalf("logout: %d", w.Code)
	}
	if n, _ := g.cfg.Queue.Len(context.Background()); n != 1 {
		t.Fatalf("%d upstream notices queued, want 1", n)
	}

	_, ck = signedIn(t, g, "http://app.localhost", "")
	st.Close()
	r = httptest.NewRequest(http.MethodGet, "http://app.localhost"+PathLogout, nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	r.AddCookie(ck)
	w = httptest.NewRecorder()
	g.Check(w, r)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "still signed in") {
		t.Fatalf("logout with the store down: %d\n%s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == g.cookies.name && c.MaxAge < 0 {
			t.Fatal("gate cookie cleared though the sign-out failed")
		}
	}
}

// The verify URL's query (which a proxy may fill from the client's own
// query string) only adds requirements: it never lowers the gate's.
func TestForwardAuthQueryOnlyTightens(t *testing.T) {
	f := newFakeIdP(t)
	g := newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate", ForwardAuth: true,
		Policy: Policy{ACR: []string{"2"}, MaxAge: 15 * time.Minute, AllowGroups: []string{"admins"}}},
		Site{Origins: []string{"https://app.example.com"}})
	s := &Session{ID: "s1", Origin: "https://app.example.com", Subject: "u1", Username: "alice", Groups: []string{"staff"},
		Levels: []string{"1"}, AuthTime: time.Now().Add(-time.Hour), Expires: time.Now().Add(time.Hour)}
	g.save(context.Background(), s)
	rec := httptest.NewRecorder()
	g.cookies.set(rec, s.Origin, s.ID, time.Hour)
	ck := rec.Result().Cookies()[0]
	verify := func(query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9100"+PathVerify+query, nil)
		r.Header.Set("X-Forwarded-Host", "app.example.com")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Uri", "/admin/page")
		r.Header.Set("Accept", "text/html")
		r.AddCookie(ck)
		w := httptest.NewRecorder()
		g.Check(w, r)
		return w
	}
	for _, q := range []string{"", "?acr=1", "?acr=1&max_age=1000h&allow_user=alice", "?allow_group=staff", "?acr=&allow_user=alice&allow_group=staff"} {
		if w := verify(q); w.Code == http.StatusOK {
			t.Errorf("verify%s passed a level-1 non-admin: %v", q, w.Header())
		}
	}
	// Tightening works: a session the gate passes is refused by a query
	// that asks more.
	s.Groups, s.Levels, s.AuthTime = []string{"admins"}, []string{"1", "2"}, time.Now()
	g.save(context.Background(), s)
	g.cache.drop(s.ID)
	if w := verify(""); w.Code != http.StatusOK {
		t.Fatalf("strong session: %d", w.Code)
	}
	for _, q := range []string{"?acr=3", "?allow_user=bob", "?deny_group=admins", "?max_age=1ns"} {
		if w := verify(q); w.Code == http.StatusOK {
			t.Errorf("verify%s did not tighten", q)
		}
	}
}

// A header name another gate sends upstream is stripped everywhere.
func TestStripsOtherGatesHeaders(t *testing.T) {
	g := newTestGate(t, nil, Config{Policy: Policy{Bypass: []string{"/public/*"}}},
		Site{Headers: DefaultHeaders(), Strip: []string{"X-Admin-User", "X-Admin-Assertion"}})
	r := request(http.MethodGet, "app.localhost", "/public/x")
	r.Header.Set("X-Admin-User", "root")
	r.Header.Set("x_admin_assertion", "forged")
	if _, handled := g.Check(httptest.NewRecorder(), r); handled {
		t.Fatal("bypassed path handled")
	}
	if len(r.Header.Values("X-Admin-User")) != 0 || len(r.Header.Values("X_Admin_Assertion")) != 0 || r.Header.Get("x_admin_assertion") != "" {
		t.Fatalf("forged headers passed: %v", r.Header)
	}
}

// TLS that ended at the proxy in front: the gate's own endpoints take the
// scheme from the proxy (forward auth), or from a trusted proxy (WithScheme).
func TestEndpointsBehindATLSProxy(t *testing.T) {
	f := newFakeIdP(t)
	fwd := newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate", ForwardAuth: true}, Site{Origins: []string{"https://app.example.com"}})
	r := request(http.MethodGet, "app.example.com", "/.gatehouse/login?return=/x")
	r.Header.Set("X-Forwarded-Proto", "https")
	w := httptest.NewRecorder()
	fwd.Check(w, r)
	if loc, _ := url.Parse(w.Header().Get("Location")); w.Code != http.StatusFound || loc.Query().Get("redirect_uri") != "https://app.example.com/.gatehouse/callback" {
		t.Fatalf("forward-auth login behind TLS: %d %s", w.Code, w.Header().Get("Location"))
	}
	// An in-Caddy gate does not take a client's X-Forwarded-Proto…
	in := newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate"}, Site{Origins: []string{"https://app.example.com"}})
	r = request(http.MethodGet, "app.example.com", "/.gatehouse/login?return=/x")
	r.Header.Set("X-Forwarded-Proto", "https")
	w = httptest.NewRecorder()
	in.Check(w, r)
	if w.Code != http.StatusMisdirectedRequest {
		t.Fatalf("in-Caddy gate trusted a client's X-Forwarded-Proto: %d", w.Code)
	}
	// …only what the server says a trusted proxy told it.
	r = r.WithContext(WithScheme(r.Context(), "https"))
	w = httptest.NewRecorder()
	in.Check(w, r)
	if w.Code != http.StatusFound {
		t.Fatalf("trusted proxy's scheme: %d", w.Code)
	}
}

// A gate session is not saved for an SSO session that has just ended (a
// callback in flight when the logout ran).
func TestNoGateSessionForAnEndedSSOSession(t *testing.T) {
	st := testStore(t)
	g := newTestGate(t, st, Config{}, Site{})
	ctx := context.Background()
	if err := (Sessions{Store: st}).SessionEnded(ctx, logout.Ended{SID: "sid-9", Subject: "u1"}, g.cfg.Queue); err != nil {
		t.Fatal(err)
	}
	s := &Session{ID: "late", SID: "sid-9", Origin: "http://app.localhost", Subject: "u1", Expires: time.Now().Add(time.Hour)}
	if err := g.save(ctx, s); !errors.Is(err, store.ErrExists) {
		t.Fatalf("save after the SSO session ended: %v", err)
	}
	if x, _ := g.load(ctx, "late"); x != nil {
		t.Fatal("gate session saved")
	}
}

// HSTS on https origins of a gate, never on http ones.
func TestGateHSTS(t *testing.T) {
	g := newTestGate(t, nil, Config{HSTS: "max-age=31536000", Policy: Policy{Bypass: []string{"/*"}}},
		Site{Origins: []string{"https://app.example.com", "http://app.localhost"}})
	r := request(http.MethodGet, "app.example.com", "/x")
	r.TLS = fakeTLS
	w := httptest.NewRecorder()
	g.Check(w, r)
	if w.Header().Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("https: %v", w.Header())
	}
	w = httptest.NewRecorder()
	g.Check(w, request(http.MethodGet, "app.localhost", "/x"))
	if w.Header().Get("Strict-Transport-Security") != "" {
		t.Fatal("HSTS over http")
	}
}
