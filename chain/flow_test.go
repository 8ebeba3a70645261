package chain_test

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// browser drives an http.Handler with httptest recorders, keeping cookies
// like a browser would (no domain or path matching: one site).
type browser struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
}

func newBrowser(t *testing.T, h http.Handler) *browser {
	return &browser{t: t, h: h, cookies: map[string]*http.Cookie{}}
}

func (b *browser) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	b.t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for _, c := range b.cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return w
}

func (b *browser) get(target string) *httptest.ResponseRecorder {
	return b.do(http.MethodGet, target, nil)
}
func (b *browser) post(f url.Values) *httptest.ResponseRecorder {
	return b.do(http.MethodPost, "/login", f)
}

// id is the browser id the session manager gave this browser.
func (b *browser) id(m *session.Manager) string {
	b.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	id := m.BrowserID(w, r)
	if len(w.Result().Cookies()) != 0 {
		b.t.Fatal("browser has no browser id yet")
	}
	return id
}

// flow is an engine mounted at /login with /start beginning an attempt.
type flow struct {
	*deps
	t   *testing.T
	e   *chain.Engine
	mux *http.ServeMux
	req chain.Request // what /start asks for
}

func newFlow(t *testing.T, cfg chain.Config) *flow {
	t.Helper()
	d := newDepsWith(t, session.Options{Secure: true})
	f := &flow{deps: d, t: t, e: d.engine(t, cfg), mux: http.NewServeMux(),
		req: chain.Request{ReturnTo: "/done?app=1", Client: "Wiki"}}
	f.mux.Handle("/login", f.e)
	f.mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		if err := f.e.Start(w, r, f.req); err != nil {
			t.Errorf("Start: %v", err)
			http.Error(w, err.Error(), 500)
		}
	})
	return f
}

var attemptLoc = regexp.MustCompile(`^/login\?attempt=([A-Za-z0-9_-]{40,})$`)

// idOf is the attempt id inside a sealed attempt token.
func (f *flow) idOf(token string) string {
	f.t.Helper()
	var tok struct {
		ID string `json:"id"`
	}
	if err := f.sessions.Open("login-attempt", token, &tok); err != nil || tok.ID == "" {
		f.t.Fatalf("attempt token does not open: %v", err)
	}
	return tok.ID
}

// start begins an attempt in b and returns its sealed token and login
// page URL.
func (f *flow) start(b *browser) (token, loginURL string) {
	b.t.Helper()
	w := b.get("/start")
	if w.Code != http.StatusSeeOther {
		b.t.Fatalf("Start: status %d, want 303", w.Code)
	}
	loc := w.Header().Get("Location")
	m := attemptLoc.FindStringSubmatch(loc)
	if m == nil {
		b.t.Fatalf("Start redirected to %q, want /login?attempt=<id>", loc)
	}
	return m[1], loc
}

// page is a rendered login form.
type page struct {
	status int
	body   string
	form   url.Values // the hidden fields
}

func loginPage(t *testing.T, w *httptest.ResponseRecorder) page {
	t.Helper()
	p := page{status: w.Code, body: w.Body.String(), form: url.Values{}}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		p.form.Set(m[1], html.UnescapeString(m[2]))
	}
	return p
}

func (p page) with(kv ...string) url.Values {
	f := url.Values{}
	for k, v := range p.form {
		f[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

var alertRE = regexp.MustCompile(`role="alert">([^<]*)<`)

func alert(body string) string {
	if m := alertRE.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

func TestStartRedirectsToLoginPage(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	b := newBrowser(t, f.mux)
	id, loc := f.start(b)
	if _, ok := b.cookies["__Host-gatehouse-b"]; !ok {
		t.Fatalf("Start set no browser cookie: %v", b.cookies)
	}
	if _, ok := b.cookies["__Host-gatehouse"]; ok {
		t.Fatal("Start set a session cookie before any sign-in")
	}
	// Nothing is written for a request that has not posted a form.
	if _, err := f.st.Get(context.Background(), "attempt:"+f.idOf(id)); err == nil {
		t.Fatal("Start stored the attempt")
	}
	if w := b.get(loc); w.Code != http.StatusOK {
		t.Fatalf("login page: %d", w.Code)
	}
	if _, err := f.st.Get(context.Background(), "attempt:"+f.idOf(id)); err == nil {
		t.Fatal("showing the login page stored the attempt")
	}
	id2, _ := f.start(b)
	if id2 == id || f.idOf(id2) == f.idOf(id) {
		t.Fatal("two Starts share an attempt id")
	}
	if loc != "/login?attempt="+id {
		t.Fatalf("location %q", loc)
	}
}

func TestLoginPageForm(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	f.req.LoginHint = "alice@example.com"
	b := newBrowser(t, f.mux)
	id, loc := f.start(b)
	w := b.get(loc)
	if w.Code != http.StatusOK {
		t.Fatalf("login page: %d\n%s", w.Code, w.Body)
	}
	h := w.Header()
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Cache-Control") != "no-store" ||
		h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("headers %v", h)
	}
	p := loginPage(t, w)
	if want := f.sessions.CSRFToken(b.id(f.sessions), "login:"+f.idOf(id)); p.form.Get("csrf") != want || want == "" {
		t.Fatalf("csrf field %q, want %q", p.form.Get("csrf"), want)
	}
	if p.form.Get("attempt") != id || p.form.Get("module") != "Password" {
		t.Fatalf("hidden fields %v", p.form)
	}
	for _, want := range []string{`action="/login"`, `method="post"`, `name="username"`, `name="password"`, `type="password"`,
		`value="alice@example.com"`, "Wiki"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	// GET does not consume or change the attempt: the page can be reloaded.
	if again := loginPage(t, b.get(loc)); again.status != 200 || again.form.Get("csrf") != p.form.Get("csrf") {
		t.Fatalf("reload: %d", again.status)
	}
}

func TestLoginSuccess(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	b := newBrowser(t, f.mux)
	_, loc := f.start(b)
	p := loginPage(t, b.get(loc))
	f.clk.add(1500 * time.Millisecond)
	w := b.post(p.with("username", "ALICE", "password", "pw"))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != loc {
		t.Fatalf("after password: %d to %q, want 303 to %q\n%s", w.Code, w.Header().Get("Location"), loc, w.Body)
	}
	if _, ok := b.cookies["__Host-gatehouse"]; ok {
		t.Fatal("session cookie set before the chain is done")
	}
	// The next step finds nothing more to ask: the SSO session is made and
	// the browser goes back.
	w = b.get(loc)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/done?app=1" {
		t.Fatalf("finish: %d to %q\n%s", w.Code, w.Header().Get("Location"), w.Body)
	}
	var sso *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "__Host-gatehouse" {
			sso = c
		}
	}
	if sso == nil || !sso.HttpOnly || !sso.Secure || sso.SameSite != http.SameSiteLaxMode || sso.Path != "/" {
		t.Fatalf("SSO cookie %+v", sso)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(sso)
	s, err := f.sessions.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if s.Subject != f.alice.Subject || len(s.Passed) != 1 {
		t.Fatalf("session %+v", s)
	}
	p0 := s.Passed[0]
	if p0.Module != "Password" || p0.Kind != "password" || strings.Join(p0.Levels, ",") != "1" || strings.Join(p0.AMR, ",") != "pwd" ||
		!p0.At.Equal(f.clk.Now().Truncate(time.Second)) {
		t.Fatalf("passed %+v", p0)
	}
	// The attempt is used up.
	if w := b.get(loc); w.Code != http.StatusBadRequest {
		t.Fatalf("finished attempt reused: %d", w.Code)
	}

	// A new Start in the same browser with the session goes straight back.
	_, loc2 := f.start(b)
	if w := b.get(loc2); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/done?app=1" {
		t.Fatalf("with session: %d %q", w.Code, w.Header().Get("Location"))
	}
	if got, _ := f.sessions.Load(withCookies(b)); got == nil || got.ID != s.ID {
		t.Fatal("a second sign-in in one session changed the session id")
	}
	// ForceLogin asks again.
	f.req.ForceLogin = true
	_, loc3 := f.start(b)
	if p := loginPage(t, b.get(loc3)); p.status != 200 || p.form.Get("module") != "Password" {
		t.Fatalf("force login: %d", p.status)
	}
}

func withCookies(b *browser) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	return r
}

func TestAnotherPersonGetsANewSession(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	if _, err := f.users.Create(context.Background(), users.User{Username: "bob"}, "bob-pw"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, f.mux)
	login := func(user, pw string) *session.Session {
		t.Helper()
		f.req.ForceLogin = true
		_, loc := f.start(b)
		p := loginPage(t, b.get(loc))
		if w := b.post(p.with("username", user, "password", pw)); w.Code != http.StatusSeeOther {
			t.Fatalf("%s: %d", user, w.Code)
		}
		if w := b.get(loc); w.Header().Get("Location") != "/done?app=1" {
			t.Fatalf("%s: finish %d", user, w.Code)
		}
		s, err := f.sessions.Load(withCookies(b))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sa := login("alice", "pw")
	sb := login("bob", "bob-pw")
	if sb.ID == sa.ID || sb.Subject == sa.Subject {
		t.Fatalf("bob got alice's session %q", sa.ID)
	}
	if _, err := f.sessions.Get(context.Background(), sa.ID); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("alice's session survived bob's sign-in: %v", err)
	}
	if ended := f.ended.got(); len(ended) != 1 || ended[0] != sa.ID {
		t.Fatalf("logout ended %v, want alice's session", ended)
	}
}

func TestCSRFRequired(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	b := newBrowser(t, f.mux)
	id, loc := f.start(b)
	p := loginPage(t, b.get(loc))
	_, otherLoc := f.start(b)
	other := loginPage(t, b.get(otherLoc))
	for name, form := range map[string]url.Values{
		"no csrf":             p.with("csrf", "", "username", "alice", "password", "pw"),
		"csrf field missing":  func() url.Values { v := p.with("username", "alice", "password", "pw"); v.Del("csrf"); return v }(),
		"wrong csrf":          p.with("csrf", "AAAA", "username", "alice", "password", "pw"),
		"other attempt's":     p.with("csrf", other.form.Get("csrf"), "username", "alice", "password", "pw"),
		"other purpose":       p.with("csrf", f.sessions.CSRFToken(b.id(f.sessions), "logout:"+f.idOf(id)), "username", "alice", "password", "pw"),
		"token in query only": nil,
	} {
		var w *httptest.ResponseRecorder
		if form == nil {
			w = b.do(http.MethodPost, "/login?csrf="+url.QueryEscape(p.form.Get("csrf")), p.with("csrf", "", "username", "alice", "password", "pw"))
		} else {
			w = b.post(form)
		}
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, w.Code)
		}
		if !strings.Contains(w.Body.String(), "This form has expired") || strings.Contains(w.Body.String(), `name="password"`) {
			t.Errorf("%s: not the error page:\n%s", name, w.Body)
		}
		if _, ok := b.cookies["__Host-gatehouse"]; ok {
			t.Fatalf("%s: signed in without CSRF token", name)
		}
	}
	// Refused forms do not count as failures nor spend the attempt.
	if w := b.post(p.with("username", "alice", "password", "pw")); w.Code != http.StatusSeeOther {
		t.Fatalf("right form after CSRF failures: %d\n%s", w.Code, w.Body)
	}
}

func TestWrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	ctx := context.Background()
	nopw, _ := f.users.Create(ctx, users.User{Username: "nopw"}, "")
	off, _ := f.users.Create(ctx, users.User{Username: "off"}, "pw")
	f.users.Update(ctx, off.Subject, func(u *users.User) error { u.Disabled = true; return nil })
	_ = nopw
	b := newBrowser(t, f.mux)
	_, loc := f.start(b)
	p := loginPage(t, b.get(loc))

	var first string
	for _, c := range []struct{ user, pw string }{
		{"alice", "wrong"}, {"mallory", "wrong"}, {"mallory", "pw"}, {"alice@example.com", "PW"}, {"off", "pw"}, {"nopw", "x"},
	} {
		w := b.post(p.with("username", c.user, "password", c.pw))
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("%s/%s: status %d, want 401", c.user, c.pw, w.Code)
		}
		if msg := alert(w.Body.String()); msg != "Wrong username or password." {
			t.Errorf("%s/%s: message %q", c.user, c.pw, msg)
		}
		// The whole page is the same: nothing tells the cases apart.
		if first == "" {
			first = w.Body.String()
		} else if w.Body.String() != first {
			t.Errorf("%s/%s: page differs from the first failure", c.user, c.pw)
		}
		if !strings.Contains(w.Body.String(), `name="password"`) {
			t.Errorf("%s/%s: the form is not shown again", c.user, c.pw)
		}
	}
	for _, c := range []struct{ user, pw string }{{"", "pw"}, {"alice", ""}, {"", ""}} {
		w := b.post(p.with("username", c.user, "password", c.pw))
		if w.Code != http.StatusUnauthorized || alert(w.Body.String()) != "Enter your username and password." {
			t.Errorf("empty %q/%q: %d %q", c.user, c.pw, w.Code, alert(w.Body.String()))
		}
	}
	// Still within the limit (9 failures): the right password works.
	if w := b.post(p.with("username", "alice", "password", "pw")); w.Code != http.StatusSeeOther {
		t.Fatalf("right password after failures: %d %q", w.Code, alert(w.Body.String()))
	}
}

func TestAttemptBoundToBrowser(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	victim := newBrowser(t, f.mux)
	id, loc := f.start(victim)
	p := loginPage(t, victim.get(loc))

	attacker := newBrowser(t, f.mux)
	// Opening the link in another browser shows no form.
	w := attacker.get(loc)
	if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), `name="csrf"`) || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("other browser GET: %d\n%s", w.Code, w.Body)
	}
	// The victim's form (and token) from another browser: refused.
	if w := attacker.post(p.with("username", "alice", "password", "pw")); w.Code != http.StatusBadRequest {
		t.Fatalf("other browser with the victim's token: %d", w.Code)
	}
	// Even a token valid for the attacker's own browser does not open the
	// victim's attempt.
	ownToken := f.sessions.CSRFToken(attacker.id(f.sessions), "login:"+f.idOf(id))
	w = attacker.post(p.with("csrf", ownToken, "username", "alice", "password", "pw"))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("other browser with its own token: %d\n%s", w.Code, w.Body)
	}
	for name := range attacker.cookies {
		if strings.HasPrefix(name, "__Host-gatehouse") && name != "__Host-gatehouse-b" {
			t.Fatalf("other browser got cookie %s", name)
		}
	}
	// The attempt is untouched for its own browser.
	if w := victim.post(p.with("username", "alice", "password", "pw")); w.Code != http.StatusSeeOther {
		t.Fatalf("victim: %d", w.Code)
	}
	// And once identified, finishing from another browser still fails.
	if w := attacker.get(loc); w.Code != http.StatusBadRequest {
		t.Fatalf("other browser finishing: %d", w.Code)
	}
	if _, ok := attacker.cookies["__Host-gatehouse"]; ok {
		t.Fatal("other browser got the session")
	}
	if w := victim.get(loc); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/done?app=1" {
		t.Fatalf("victim finishing: %d", w.Code)
	}
}

// Once someone is identified, the attempt keeps its own count of wrong
// answers (a second factor): ten lock it until it expires.
func TestTooManyFailuresLockTheAttempt(t *testing.T) {
	f := newFlow(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		mod("Code", "testcode", []string{"2"}, "Password"),
	}})
	b := newBrowser(t, f.mux)
	id, loc := f.start(b)
	p := loginPage(t, b.get(loc))
	if w := b.post(p.with("username", "alice", "password", "pw")); w.Code != http.StatusSeeOther {
		t.Fatalf("password: %d", w.Code)
	}
	p = loginPage(t, b.get(loc))
	for i := 1; i <= 9; i++ {
		if w := b.post(p.with("code", "000000")); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, w.Code)
		}
	}
	w := b.post(p.with("code", "000000"))
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "Too many attempts") {
		t.Fatalf("10th failure: %d\n%s", w.Code, w.Body)
	}
	// The lock stays until the attempt expires: sending its token again
	// (the same form, the same link) finds it.
	if _, err := f.st.Get(context.Background(), "attempt:"+f.idOf(id)); err != nil {
		t.Fatalf("lock not kept: %v", err)
	}
	if w := b.post(p.with("code", "123456")); w.Code != http.StatusTooManyRequests {
		t.Fatalf("right code after lock: %d", w.Code)
	}
	if w := b.get(loc); w.Code != http.StatusTooManyRequests {
		t.Fatalf("GET after lock: %d", w.Code)
	}
	if _, ok := b.cookies["__Host-gatehouse"]; ok {
		t.Fatal("locked attempt signed in")
	}
}

// Before anyone is identified nothing is stored for a failed form: the
// store does not grow with wrong (or empty) logins.
func TestFailedFirstStepsStoreNothing(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	b := newBrowser(t, f.mux)
	before := f.st.Len()
	for range 50 {
		_, loc := f.start(b)
		p := loginPage(t, b.get(loc))
		b.post(p.with("username", "", "password", ""))
		b.post(p.with("username", "mallory", "password", "wrong"))
	}
	if n := f.st.Len() - before; n != 0 {
		t.Fatalf("100 failed first steps left %d records", n)
	}
}

// Guesses sent at once must not slip past regulation (lost updates):
// each counts before it is checked.
func TestConcurrentFailuresCountEachOne(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	lim, err := regulate.New(f.st, nil, f.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	e, err := chain.New(chain.DefaultConfig(), chain.Options{Store: f.st, Sessions: f.sessions, Users: f.users, Logout: f.logout,
		Regulate: lim, LoginPath: "/login", StaticPath: "/static"})
	if err != nil {
		t.Fatal(err)
	}
	f.mux = http.NewServeMux()
	f.mux.Handle("/login", e)
	f.mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) { e.Start(w, r, f.req) })
	b := newBrowser(t, f.mux)
	_, loc := f.start(b)
	p := loginPage(t, b.get(loc))
	const n = 12
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := p.with("username", "alice", "password", "wrong")
			r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, c := range b.cookies {
				r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
			w := httptest.NewRecorder()
			<-start
			f.mux.ServeHTTP(w, r)
			codes[i] = w.Code
		}()
	}
	close(start)
	wg.Wait()
	checked := 0
	for _, c := range codes {
		if c == http.StatusUnauthorized {
			checked++
		}
	}
	if checked > 3 {
		t.Fatalf("%d of %d concurrent wrong passwords were checked (2 free, then a delay): %v", checked, n, codes)
	}
}

func TestAttemptExpires(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	b := newBrowser(t, f.mux)
	_, loc := f.start(b)
	p := loginPage(t, b.get(loc))
	f.clk.add(29 * time.Minute)
	if w := b.get(loc); w.Code != http.StatusOK {
		t.Fatalf("within TTL: %d", w.Code)
	}
	f.clk.add(2 * time.Minute)
	if w := b.get(loc); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("after TTL: %d", w.Code)
	}
	if w := b.post(p.with("username", "alice", "password", "pw")); w.Code != http.StatusBadRequest {
		t.Fatalf("post after TTL: %d", w.Code)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFlow(t, chain.DefaultConfig())
	b := newBrowser(t, f.mux)
	_, loc := f.start(b)
	for _, target := range []string{"/login", "/login?attempt=", "/login?attempt=" + strings.Repeat("a", 65), "/login?attempt=unknown"} {
		if w := b.get(target); w.Code != http.StatusBadRequest {
			t.Errorf("GET %s: %d", target, w.Code)
		}
	}
	if w := b.get(loc + "&module=Nope"); w.Code != http.StatusBadRequest {
		t.Errorf("unknown module: %d", w.Code)
	}
	w := b.do(http.MethodPut, loc, nil)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("PUT: %d %q", w.Code, w.Header().Get("Allow"))
	}
	big := url.Values{"x": {strings.Repeat("a", 70<<10)}}
	if w := b.post(big); w.Code != http.StatusBadRequest {
		t.Errorf("oversized form: %d", w.Code)
	}
}

// With the start module disabled nobody can sign in: visiting the login
// page must not make a session for nobody (nor end the one there is).
func TestDisabledStartModuleSignsNobodyIn(t *testing.T) {
	d := newDepsWith(t, session.Options{Secure: true})
	cfg := chain.Config{Modules: []chain.ModuleConfig{{Name: "Password", Kind: "password", Levels: []string{"1"}, Disabled: true}}}
	e := d.engine(t, cfg)
	mux := http.NewServeMux()
	mux.Handle("/login", e)
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Start(w, r, chain.Request{ReturnTo: "/done"}); err != nil {
			t.Error(err)
		}
	})
	b := newBrowser(t, mux)
	w := b.get("/start")
	loc := w.Header().Get("Location")
	w = b.get(loc)
	if w.Code == http.StatusSeeOther && w.Header().Get("Location") == "/done" {
		t.Fatal("a chain with nothing to pass sent the browser back as signed in")
	}
	if w.Code < 400 {
		t.Fatalf("status %d, want an error page", w.Code)
	}
	if _, ok := b.cookies["__Host-gatehouse"]; ok {
		s, _ := d.sessions.Load(withCookies(b))
		t.Fatalf("session made for nobody: %+v", s)
	}
}
