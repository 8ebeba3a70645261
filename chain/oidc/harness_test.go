package oidc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/gatehouse-idp/gatehouse/internal/logtest"
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

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/oidc"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/linking"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type syncBuf struct{ logtest.Buffer }

type nopSigner struct{}

func (nopSigner) SignClaims(string, any) (string, error) { return "token", nil }

// env is a chain with a password module and an oidc module "Corp" (of
// kind corp["kind"] when set: a preset)
// (levels 1 and 2; the remote acr "urn:mfa" reaches 2) against op,
// the Linker of package linking, regulation and an audit trail.
type env struct {
	t        *testing.T
	clk      *clock
	st       *memstore.Store
	sessions *session.Manager
	users    *users.Directory
	logout   *logout.Service
	trail    *syncBuf
	op       *op
	e        *chain.Engine
	srv      *httptest.Server
	alice    users.User
}

func newEnv(t *testing.T, corp map[string]any, more ...chain.ModuleConfig) *env {
	t.Helper()
	return newEnvWith(t, func(v *env) (string, []string, map[string]any) {
		v.op = newOP(t, v.clk.now)
		settings := map[string]any{"issuer": v.op.URL, "client_id": "gatehouse", "client_secret": "s3cret", "acr_levels": []string{"urn:mfa=2"}, "label": "Corp IdP"}
		kind := "oidc"
		for k, val := range corp {
			if k == "kind" {
				kind = val.(string)
				continue
			}
			settings[k] = val
		}
		return kind, []string{"1", "2"}, settings
	}, more...)
}

// newEnvWith is newEnv with the module Corp that corp returns (its
// kind, levels and settings), made once the env has its clock.
func newEnvWith(t *testing.T, corp func(v *env) (string, []string, map[string]any), more ...chain.ModuleConfig) *env {
	t.Helper()
	v := &env{t: t, clk: &clock{t: time.Unix(1_800_000_000, 0)}, trail: &syncBuf{}}
	v.st = memstore.New()
	v.st.Now = v.clk.now
	t.Cleanup(func() { v.st.Close() })
	ctx := context.Background()
	var err error
	if v.sessions, err = session.NewManager(ctx, v.st, session.Options{Now: v.clk.now}); err != nil {
		t.Fatal(err)
	}
	v.users = users.New(v.st, v.clk.now)
	q := logout.NewQueue(logout.QueueConfig{Store: v.st, Issuer: "https://idp.example", Signer: nopSigner{}, Now: v.clk.now})
	if v.logout, err = logout.New(logout.Config{Store: v.st, Sessions: v.sessions, Queue: q, Now: v.clk.now}); err != nil {
		t.Fatal(err)
	}
	reg, err := regulate.New(v.st, nil, v.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if v.alice, err = v.users.Create(ctx, users.User{Username: "alice", Email: "alice@example.com", EmailVerified: true}, "alice-pw"); err != nil {
		t.Fatal(err)
	}
	kind, levels, settings := corp(v)
	raw, _ := json.Marshal(settings)
	mods := append([]chain.ModuleConfig{
		{Name: "Password", Kind: "password", Levels: []string{"1"}},
		{Name: "Corp", Kind: kind, Levels: levels, Settings: raw},
	}, more...)
	mux := http.NewServeMux()
	v.srv = httptest.NewServer(mux)
	t.Cleanup(v.srv.Close)
	au := audit.New(slog.New(slog.NewJSONHandler(v.trail, nil)))
	v.e, err = chain.New(chain.Config{Modules: mods}, chain.Options{Store: v.st, Sessions: v.sessions, Users: v.users, Logout: v.logout,
		Regulate: reg, Audit: au, Issuer: v.srv.URL, LoginPath: "/login", StaticPath: "/static",
		Linker: &linking.Linker{Users: v.users, Audit: au, Now: v.clk.now}})
	if err != nil {
		t.Fatal(err)
	}
	chaintest.Serve(t, mux, v.e, v.sessions, chain.Request{ReturnTo: "/done", Client: "Wiki", ClientID: "wiki"})
	// /fresh begins a sign-in that counts only what is passed from now
	// on (max_age 0 without prompt=login: the session is read).
	mux.HandleFunc("/fresh", func(w http.ResponseWriter, r *http.Request) {
		if err := v.e.Start(w, r, chain.Request{ReturnTo: "/done", Since: v.clk.now()}); err != nil {
			t.Error(err)
		}
	})
	return v
}

func (v *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func (v *env) get(b *http.Client, u string) (int, string) {
	v.t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		v.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

func (v *env) post(b *http.Client, u string, f url.Values) (int, string) {
	v.t.Helper()
	resp, err := b.PostForm(u, f)
	if err != nil {
		v.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

var linkRE = regexp.MustCompile(`<a (?:class="[^"]*" )?href="([^"]+)">([^<]*)</a>`)

// open follows the link to module name's page on page.
func (v *env) open(b *http.Client, page, name string) (int, string) {
	v.t.Helper()
	for _, m := range linkRE.FindAllStringSubmatch(page, -1) {
		if strings.HasSuffix(html.UnescapeString(m[1]), "&module="+name) {
			return v.get(b, v.srv.URL+html.UnescapeString(m[1]))
		}
	}
	v.t.Fatalf("no link %q on:\n%s", name, page)
	return 0, ""
}

// viaCorp starts a sign-in (acr: requested levels) in b and signs in
// at the provider as claims; it returns the last answer.
func (v *env) viaCorp(b *http.Client, acr string, claims map[string]any) (int, string) {
	v.t.Helper()
	if v.op != nil {
		v.op.signIn(claims)
	}
	_, page := v.get(b, v.srv.URL+"/start?acr="+url.QueryEscape(acr))
	if !strings.Contains(page, `name="module" value="Corp"`) {
		_, page = v.open(b, page, "Corp")
	}
	return v.post(b, v.srv.URL+"/login", chaintest.Form(page))
}

// password signs in on page (the password form) as login.
func (v *env) password(b *http.Client, page, login, pw string) (int, string) {
	v.t.Helper()
	if !strings.Contains(page, `name="module" value="Password"`) {
		_, page = v.open(b, page, "Password")
	}
	return v.post(b, v.srv.URL+"/login", chaintest.Form(page, "username", login, "password", pw))
}

// session is b's SSO session, nil without one.
func (v *env) session(b *http.Client) *session.Session {
	r := httptest.NewRequest(http.MethodGet, v.srv.URL, nil)
	u, _ := url.Parse(v.srv.URL)
	for _, c := range b.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	s, err := v.sessions.Load(r)
	if err != nil {
		return nil
	}
	return s
}

func (v *env) done(sub string, amr ...string) string {
	return strings.TrimSpace(fmt.Sprintf("DONE %s %s", sub, strings.Join(amr, " ")))
}

var alertRE = regexp.MustCompile(`role="alert">([^<]*)<`)

func alert(body string) string {
	if m := alertRE.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}
