package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
	"github.com/gatehouse-idp/gatehouse/users"
)

var firstParty = provider.ClientSettings{FirstParty: true}

// clock is a settable clock shared by store, sessions and provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const (
	alicePassword = "correct horse battery"
	confSecret    = "s3cret/with+special&chars:"
	redirectURI   = "https://app.example/callback"
)

// env is a provider served by httptest with three clients:
// conf (client_secret_basic by default), post (client_secret_post only)
// and spa (public).
type env struct {
	t        *testing.T
	srv      *httptest.Server
	issuer   string
	clock    *clock
	users    *users.Directory
	keys     *provider.Keys
	alice    users.User
	clients  *provider.Clients
	p        *provider.Provider
	st       store.Store
	sessions *session.Manager
	logout   *logout.Service
}

func newEnv(t *testing.T, alg string, opts ...func(*provider.Config)) *env {
	t.Helper()
	return newEnvWith(t, envSetup{alg: alg, path: "/idp", opts: opts})
}

// envSetup varies the environment: signing algorithm, the issuer's path
// ("" for a host-only issuer) and the store (the embedded bbolt store, or
// the in-memory one).
type envSetup struct {
	alg, path string
	memory    bool
	opts      []func(*provider.Config)
	queue     func(*logout.QueueConfig)
	logout    func(*logout.Config)
	chain     *chain.Config
	// wrap, when set, wraps the store the provider uses.
	wrap func(store.Store) store.Store
	// chainOpts, when set, changes the chain engine's options.
	chainOpts func(*chain.Options)
}

func newEnvWith(t *testing.T, setup envSetup) *env {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Now().Truncate(time.Second)}
	var st store.Store
	if setup.memory {
		ms := memstore.New()
		ms.Now = c.Now
		st = ms
	} else {
		es, err := embedded.Open(filepath.Join(t.TempDir(), "g.db"), embedded.Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		st = es
	}
	t.Cleanup(func() { st.Close() })
	if setup.wrap != nil {
		st = setup.wrap(st)
	}
	// The issuer is the server's URL, known only once it listens: the
	// handler is filled in below, before any request is made.
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	issuer := srv.URL + setup.path
	alg, opts := setup.alg, setup.opts

	sessions, err := session.NewManager(ctx, st, session.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	dir := users.New(st, c.Now)
	alice, err := dir.Create(ctx, users.User{Username: "alice", Email: "alice@example.com", EmailVerified: true,
		Name: "Alice Example", Groups: []string{"staff"}}, alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := provider.NewClients(st, []provider.Client{
		// conf, post and spa are first-party (no consent page); tp is a
		// third-party client whose users are asked.
		{ID: "conf", Name: "Conf App", Secret: confSecret, RedirectURIs: []string{redirectURI}, ClientSettings: firstParty},
		{ID: "post", Secret: "post-secret", RedirectURIs: []string{redirectURI}, TokenEndpointAuthMethod: provider.AuthSecretPost, ClientSettings: firstParty},
		{ID: "spa", Public: true, RedirectURIs: []string{redirectURI, "https://app.example/cb?x=1"}, ClientSettings: firstParty},
		{ID: "tp", Name: "Third Party", Secret: "tp-secret", RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{ResponseTypes: []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "none"}}},
		{ID: "svc", Secret: "svc-secret", Scopes: []string{"reports:read", "reports:write"},
			ClientSettings: provider.ClientSettings{GrantTypes: []string{provider.GrantClientCredentials}}},
		{ID: "rs", Secret: "rs-secret", ClientSettings: provider.ClientSettings{GrantTypes: []string{provider.GrantClientCredentials}, ResourceServer: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := provider.NewKeys(ctx, st, alg, 20*time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	qc := logout.QueueConfig{Store: st, Issuer: issuer, Signer: keys, Now: c.Now}
	if setup.queue != nil {
		setup.queue(&qc)
	}
	lc := logout.Config{Store: st, Sessions: sessions, Queue: logout.NewQueue(qc), Now: c.Now}
	if setup.logout != nil {
		setup.logout(&lc)
	}
	lo, err := logout.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	cc := chain.DefaultConfig()
	if setup.chain != nil {
		cc = *setup.chain
	}
	co := chain.Options{Store: st, Sessions: sessions, Users: dir, Logout: lo, Issuer: issuer,
		LoginPath: provider.LoginPath(issuer), StaticPath: provider.StaticPath(issuer)}
	if setup.chainOpts != nil {
		setup.chainOpts(&co)
	}
	engine, err := chain.New(cc, co)
	if err != nil {
		t.Fatal(err)
	}
	cfg := provider.Config{Issuer: issuer, Store: st, Users: dir, Clients: clients, Keys: keys, Sessions: sessions, Chain: engine, Logout: lo}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := provider.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h = p
	return &env{t: t, srv: srv, issuer: issuer, clock: c, users: dir, keys: keys, alice: alice, clients: clients, p: p,
		st: st, sessions: sessions, logout: lo}
}

// browser is a cookie-keeping client that stops at the client's
// redirect URI.
type browser struct {
	t *testing.T
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, c: &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if r.URL.Host == "app.example" {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
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

var hidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// loginForm returns the hidden fields of a login page.
func loginForm(page string) url.Values {
	f := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(page, -1) {
		f.Set(m[1], html.UnescapeString(m[2]))
	}
	return f
}

// authParams are a valid request for client; tests change what they test.
func authParams(client string) url.Values {
	return url.Values{
		"client_id": {client}, "response_type": {"code"}, "scope": {"openid profile email"},
		"redirect_uri": {redirectURI}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"},
	}
}

const verifier = "verifier-0123456789-0123456789-0123456789-abc"

func challenge(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func (e *env) authURL(q url.Values) string { return e.issuer + "/authorize?" + q.Encode() }

var formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)

// submitLogin posts the login form of page (reached at resp) as a browser
// would: to the form's own action, resolved against the page's URL, with
// its hidden fields and alice's credentials.
func (b *browser) submitLogin(resp *http.Response, page, password string) (*http.Response, string) {
	b.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no login form at %s (status %d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	action, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		b.t.Fatalf("form action %q: %v", m[1], err)
	}
	f := loginForm(page)
	if f.Get("csrf") == "" {
		b.t.Fatalf("login form without a csrf field:\n%s", page)
	}
	f.Set("username", "alice")
	f.Set("password", password)
	return b.post(resp.Request.URL.ResolveReference(action).String(), f)
}

// login runs an authorization in b, signing in when asked, and returns
// the query the client receives.
func (e *env) login(b *browser, q url.Values) url.Values {
	e.t.Helper()
	resp, page := b.get(e.authURL(q))
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="password"`) {
		resp, page = b.submitLogin(resp, page, alicePassword)
	}
	return callbackQuery(e.t, resp, page)
}

func callbackQuery(t *testing.T, resp *http.Response, page string) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d at %s, want redirect to client:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != "app.example" {
		t.Fatalf("redirect to %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

// token posts form to the token endpoint with optional basic auth.
func (e *env) token(form url.Values, basicUser, basicPass string) (*http.Response, map[string]any) {
	e.t.Helper()
	return e.postForm("/token", form, basicUser, basicPass)
}

// postForm posts form to an endpoint below the issuer with optional
// basic auth, and decodes the JSON answer.
func (e *env) postForm(path string, form url.Values, basicUser, basicPass string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return doJSON(e.t, req)
}

func doJSON(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	body, _ := io.ReadAll(resp.Body)
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("status %d, body not JSON: %s", resp.StatusCode, body)
		}
	}
	return resp, m
}

func codeForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
}

// userinfo calls userinfo with a Bearer header.
func (e *env) userinfo(token string) (*http.Response, map[string]any) {
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return doJSON(e.t, req)
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func usersUser(name string) users.User { return users.User{Username: name} }
