package console_test

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	_ "github.com/gatehouse-idp/gatehouse/chain/totp"
	"github.com/gatehouse-idp/gatehouse/console"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

const (
	adminPassword = "admin password 1"
	userPassword  = "bob password 12"
)

// clock is the test's clock; the chain's TOTP checks use the real time.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// env is an IdP (password level 1, TOTP level 2) with the console on:
// "root" is in the admins group, "bob" is not.
type env struct {
	t      *testing.T
	issuer string
	clock  *clock
	users  *users.Directory
	svc    *admin.Service
	recent *console.Recent
	log    *bytes.Buffer
	logMu  *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newEnv(t *testing.T, acr string) *env {
	t.Helper()
	ctx := context.Background()
	c := &clock{}
	st := memstore.New()
	st.Now = c.Now
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	issuer := srv.URL + "/idp"
	e := &env{t: t, issuer: issuer, clock: c, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	aud := audit.New(slog.New(slog.NewJSONHandler(lockedWriter{e.logMu, e.log}, nil)))
	sessions, err := session.NewManager(ctx, st, session.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.users = users.New(st, c.Now)
	if _, err := e.users.Create(ctx, users.User{Username: "root", Groups: []string{"admins"}}, adminPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := e.users.Create(ctx, users.User{Username: "bob", Groups: []string{"staff"}}, userPassword); err != nil {
		t.Fatal(err)
	}
	clients, err := provider.NewClients(st, []provider.Client{{ID: "static", Secret: "static-secret", RedirectURIs: []string{"https://app.example/cb"}}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := provider.NewKeys(ctx, st, "ES256", 20*time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := logout.New(logout.Config{Store: st, Sessions: sessions, Audit: aud,
		Queue: logout.NewQueue(logout.QueueConfig{Store: st, Issuer: issuer, Signer: keys, Now: c.Now}), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := regulate.New(st, nil, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := chain.New(chain.Config{Modules: []chain.ModuleConfig{
		{Name: "password", Kind: "password", Levels: []string{"1"}},
		{Name: "totp", Kind: "totp", Levels: []string{"2"}, After: []string{"password"}},
	}}, chain.Options{Store: st, Sessions: sessions, Users: e.users, Logout: lo, Regulate: reg, Audit: aud, Issuer: issuer,
		LoginPath: provider.LoginPath(issuer), StaticPath: provider.StaticPath(issuer)})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = &admin.Service{Store: st, Users: e.users, Sessions: sessions, Logout: lo, Clients: clients, Keys: keys,
		Chain: engine, Regulate: reg, Audit: aud}
	e.recent = console.NewRecent(100, c.Now)
	aud.Subscribe(e.recent.Observe)
	cons, err := console.New(console.Config{Prefix: "/idp", Static: provider.StaticPath(issuer), Sessions: sessions,
		Users: e.users, Chain: engine, Admin: e.svc, Recent: e.recent, ACR: acr})
	if err != nil {
		t.Fatal(err)
	}
	p, err := provider.New(provider.Config{Issuer: issuer, Store: st, Users: e.users, Clients: clients, Keys: keys,
		Sessions: sessions, Chain: engine, Logout: lo, Regulate: reg, Audit: aud, Console: cons})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Provider = p
	h = p
	return e
}

// auditLog is what the audit log wrote so far.
func (e *env) auditLog() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.log.String()
}

type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hidden     = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	secretRE   = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)
)

// submit posts the first form of page with its hidden fields and extra.
func (b *browser) submit(resp *http.Response, page string, extra url.Values) (*http.Response, string) {
	b.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form at %s (status %d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	action, _ := url.Parse(html.UnescapeString(m[1]))
	f := url.Values{}
	for _, h := range hidden.FindAllStringSubmatch(page, -1) {
		if f.Get(h[1]) == "" {
			f.Set(h[1], html.UnescapeString(h[2]))
		}
	}
	for k, v := range extra {
		f[k] = v
	}
	return b.post(resp.Request.URL.ResolveReference(action).String(), f)
}

// signIn opens the console page path as user, signing in (and enrolling
// or entering TOTP when asked, with *secret), and returns the page.
func (e *env) signIn(b *browser, path, user, password string, secret *string) (*http.Response, string) {
	e.t.Helper()
	resp, page := b.get(e.issuer + path)
	for range 4 {
		switch {
		case strings.HasPrefix(resp.Request.URL.Path, "/idp/admin"):
			return resp, page
		case strings.Contains(page, `name="password"`) && strings.Contains(page, `name="username"`):
			resp, page = b.submit(resp, page, url.Values{"username": {user}, "password": {password}})
		case strings.Contains(page, `name="code"`):
			if m := secretRE.FindStringSubmatch(page); m != nil {
				*secret = m[1]
			}
			code, err := totp.GenerateCodeCustom(*secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				e.t.Fatal(err)
			}
			resp, page = b.submit(resp, page, url.Values{"code": {code}})
		default:
			return resp, page
		}
	}
	return resp, page
}

// csrf is the CSRF token of a console page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field:\n%s", page)
	}
	return html.UnescapeString(m[1])
}
