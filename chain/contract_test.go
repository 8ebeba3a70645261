package chain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/session"
)

// cenv is an engine with every capability's dependencies (issuer,
// mailer) on a real HTTP server: /start begins an attempt (acr from
// the query), /done says who signed in and with what.
type cenv struct {
	*deps
	t      *testing.T
	e      *chain.Engine
	srv    *httptest.Server
	outbox *chaintest.Outbox
}

func newCEnv(t *testing.T, mods []chain.ModuleConfig, opt func(*chain.Options)) *cenv {
	t.Helper()
	c := &cenv{deps: newDeps(t), t: t, outbox: &chaintest.Outbox{}}
	mux := http.NewServeMux()
	c.srv = httptest.NewServer(mux)
	t.Cleanup(c.srv.Close)
	o := chain.Options{Store: c.st, Sessions: c.sessions, Users: c.users, Logout: c.logout, Issuer: c.srv.URL,
		LoginPath: "/login", StaticPath: "/static", Mailer: c.outbox}
	if opt != nil {
		opt(&o)
	}
	e, err := chain.New(chain.Config{Modules: mods}, o)
	if err != nil {
		t.Fatal(err)
	}
	c.e = e
	chaintest.Serve(t, mux, e, c.sessions, chain.Request{ReturnTo: "/done", Client: "Test"})
	return c
}

// client is a browser: cookies kept, redirects followed.
func (c *cenv) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func (c *cenv) done(sub string, amr ...string) string {
	return strings.TrimSpace("DONE " + sub + " " + strings.Join(amr, " "))
}

var choiceRE = regexp.MustCompile(`<a (?:class="button" )?href="([^"]+)">([^<]+)</a>`)

// choose follows the link named name on page.
func (c *cenv) choose(b *http.Client, page, name string) (int, string) {
	c.t.Helper()
	for _, m := range choiceRE.FindAllStringSubmatch(page, -1) {
		if m[2] == name {
			return get(c.t, b, c.srv.URL+strings.ReplaceAll(m[1], "&amp;", "&"))
		}
	}
	c.t.Fatalf("no choice %q on:\n%s", name, page)
	return 0, ""
}

func settings(v string) json.RawMessage { return json.RawMessage(v) }

// A RedirectModule passes through another site and back; its way back
// works once, in the browser that left, for the module that left.
func TestRedirectModule(t *testing.T) {
	idp := chaintest.NewIdP()
	defer idp.Close()
	remote := func(name string, link bool) chain.ModuleConfig {
		return chain.ModuleConfig{Name: name, Kind: "test-remote", Levels: []string{"1"}, Settings: settings(fmt.Sprintf(`{"url": %q, "link": %v}`, idp.URL, link))}
	}
	c := newCEnv(t, []chain.ModuleConfig{mod("Password", "password", []string{"1"}), remote("Remote", true), remote("Other", true), remote("Unlinked", false)}, nil)
	idp.SignIn(chaintest.Claims{Sub: "r-1", Email: "alice@example.com"})

	// leaveFor walks a new browser to the module's button and presses
	// it, stopping at the way back.
	leaveFor := func(name string) (*http.Client, string) {
		b := c.client()
		_, page := get(t, b, c.srv.URL+"/start")
		_, page = c.choose(b, page, name)
		if !strings.Contains(page, `name="step" value="redirect"`) {
			t.Fatalf("no redirect button:\n%s", page)
		}
		var back string
		b.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
			if strings.HasSuffix(r.URL.Path, "/callback") {
				back = r.URL.String()
				return http.ErrUseLastResponse
			}
			return nil
		}
		post(t, b, c.srv.URL+"/login", form(page))
		b.CheckRedirect = nil
		if !strings.HasPrefix(back, c.srv.URL+"/login/m/"+name+"/callback?") {
			t.Fatalf("way back %q", back)
		}
		return b, back
	}

	b, back := leaveFor("Remote")
	// Another browser cannot use it (and does not spend it)...
	if st, body := get(t, c.client(), back); st != http.StatusBadRequest || !strings.Contains(body, "This link is not valid") {
		t.Fatalf("callback in another browser: %d", st)
	}
	// ...nor another module's way back (a mix-up).
	mixed := strings.Replace(back, "/m/Remote/", "/m/Other/", 1)
	if st, _ := get(t, b, mixed); st != http.StatusBadRequest {
		t.Fatalf("state used at another module: %d", st)
	}
	if st, body := get(t, b, back); st != http.StatusOK || body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("callback: %d %s", st, body)
	}
	if st, _ := get(t, b, back); st != http.StatusBadRequest {
		t.Fatalf("callback replayed: %d", st)
	}
	if st, _ := get(t, c.client(), c.srv.URL+"/login/m/Remote/callback?state=made-up&code=x"); st != http.StatusBadRequest {
		t.Fatalf("made-up state: %d", st)
	}

	// A code that does not carry the nonce of this page is refused on
	// the module's page, and counted.
	b, back = leaveFor("Remote")
	u, _ := url.Parse(back)
	q := u.Query()
	q.Set("error", "access_denied")
	u.RawQuery = q.Encode()
	if st, body := get(t, b, u.String()); st != http.StatusUnauthorized || alert(body) != "The remote provider said no: access_denied" {
		t.Fatalf("refused remote sign-in: %d %q", st, alert(body))
	}

	// A POST from the other site (form_post) carries no SameSite=Lax
	// cookie: the engine posts it again from its own origin.
	b, back = leaveFor("Remote")
	u, _ = url.Parse(back)
	st, page := post(t, b, c.srv.URL+u.Path, u.Query())
	if st != http.StatusOK || !strings.Contains(page, `id="form-post"`) {
		t.Fatalf("cross-site POST: %d\n%s", st, page)
	}
	again := form(page)
	if again.Get("state") != u.Query().Get("state") || again.Get("gatehouse_resubmitted") != "1" {
		t.Fatalf("re-posted fields %v", again)
	}
	if st, body := post(t, b, c.srv.URL+u.Path, again); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("re-posted callback: %d %s", st, body)
	}

	// An identity no local user has: refused without a Linker.
	b, back = leaveFor("Unlinked")
	if st, body := get(t, b, back); st != http.StatusForbidden || !strings.Contains(body, "not known here") {
		t.Fatalf("unlinked identity: %d", st)
	}
	if _, err := c.sessions.Load(withJar(b, c.srv.URL)); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("unlinked identity got a session: %v", err)
	}
}

// withJar is a request carrying b's cookies for site.
func withJar(b *http.Client, site string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, site, nil)
	u, _ := url.Parse(site)
	for _, ck := range b.Jar.Cookies(u) {
		r.AddCookie(ck)
	}
	return r
}

type emailLinker struct{ d *deps }

func (l *emailLinker) Link(ctx context.Context, _ *chain.Attempt, c chain.Claims) (string, error) {
	u, err := l.d.users.Lookup(ctx, c.Email)
	if err != nil {
		return "", chain.ErrNotLinked
	}
	return u.Subject, nil
}

func (l *emailLinker) Attach(context.Context, string, chain.Claims) error {
	return errors.New("not used")
}

// With a Linker, an identity at another issuer becomes a local user's.
func TestLinkerLinksUnlinkedIdentities(t *testing.T) {
	idp := chaintest.NewIdP()
	defer idp.Close()
	linker := &emailLinker{}
	c := newCEnv(t, []chain.ModuleConfig{{Name: "Remote", Kind: "test-remote", Levels: []string{"1"}, Settings: settings(fmt.Sprintf(`{"url": %q}`, idp.URL))}},
		func(o *chain.Options) { o.Linker = linker })
	linker.d = c.deps
	b := c.client()
	idp.SignIn(chaintest.Claims{Sub: "r-1", Email: "alice@example.com"})
	_, page := get(t, b, c.srv.URL+"/start")
	if st, body := post(t, b, c.srv.URL+"/login", form(page)); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("linked: %d %s", st, body)
	}
	idp.SignIn(chaintest.Claims{Sub: "r-2", Email: "stranger@example.com"})
	b = c.client()
	_, page = get(t, b, c.srv.URL+"/start")
	if st, _ := post(t, b, c.srv.URL+"/login", form(page)); st != http.StatusForbidden {
		t.Fatalf("no local user: %d", st)
	}
}

func TestModuleBuildChecks(t *testing.T) {
	d := newDeps(t)
	base := chain.Options{Store: d.st, Sessions: d.sessions, Users: d.users, Logout: d.logout, LoginPath: "/login", Issuer: "https://idp.example", Mailer: &chaintest.Outbox{}}
	cases := []struct {
		name string
		m    chain.ModuleConfig
		opt  func(*chain.Options)
		want string
	}{
		{"no capability", chain.ModuleConfig{Name: "N", Kind: "testnothing", Levels: []string{"1"}}, nil, "can pass no way"},
		{"redirect without issuer", chain.ModuleConfig{Name: "R", Kind: "test-remote", Levels: []string{"1"}, Settings: settings(`{"url": "https://r.example"}`)},
			func(o *chain.Options) { o.Issuer = "" }, "needs the issuer URL"},
		{"settings invalid", chain.ModuleConfig{Name: "R", Kind: "test-remote", Levels: []string{"1"}}, nil, `module "R": url is required`},
		{"mail without mailer", chain.ModuleConfig{Name: "M", Kind: "test-mail", Levels: []string{"1"}}, func(o *chain.Options) { o.Mailer = nil }, "no mail is configured"},
		{"missing script", chain.ModuleConfig{Name: "S", Kind: "test-script", Levels: []string{"1"}, Settings: settings(`{"static": "nope.js"}`)}, nil, `no static asset "nope.js"`},
		{"bad issuer", chain.ModuleConfig{Name: "P", Kind: "password", Levels: []string{"1"}}, func(o *chain.Options) { o.Issuer = "/relative" }, "no absolute URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			if tc.opt != nil {
				tc.opt(&o)
			}
			if _, err := chain.New(chain.Config{Modules: []chain.ModuleConfig{tc.m}}, o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// nothing is a kind with a page and no way to pass.
type nothing struct{}

func (nothing) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{}, nil
}

// badAMR passes with a method value RFC 8176 does not register.
type badAMR struct{ fixedCode }

func (m badAMR) Verify(_ context.Context, a *chain.Attempt, _ url.Values) (chain.Identity, error) {
	return chain.Identity{Subject: a.Subject, AMR: []string{"mail"}}, nil
}

func init() {
	chain.Register("testnothing", func(chain.Deps, struct{}) (chain.Module, error) { return nothing{}, nil })
	chain.Register("testbadamr", func(chain.Deps, struct{}) (chain.Module, error) { return badAMR{}, nil })
}

// A module's bug (an amr value nobody registered) is a technical
// failure, never a pass.
func TestUnregisteredAMRIsNoPass(t *testing.T) {
	c := newCEnv(t, []chain.ModuleConfig{mod("Password", "password", []string{"1"}), {Name: "Odd", Kind: "testbadamr", Levels: []string{"2"}, After: []string{"Password"}}}, nil)
	b := c.client()
	_, page := get(t, b, c.srv.URL+"/start")
	_, page = post(t, b, c.srv.URL+"/login", form(page, "username", "alice", "password", "pw"))
	if st, body := post(t, b, c.srv.URL+"/login", form(page)); st != http.StatusServiceUnavailable || strings.HasPrefix(body, "DONE") {
		t.Fatalf("odd amr: %d %s", st, body)
	}
}

// Several start modules are offered side by side; one shown only when
// needed appears only when a requested level leads through it, and
// auth_time is when a start module was passed.
func TestSeveralStartModules(t *testing.T) {
	idp := chaintest.NewIdP()
	defer idp.Close()
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Remote", Kind: "test-remote", Levels: []string{"strong"}, ShowOnlyWhenNeeded: true, Settings: settings(fmt.Sprintf(`{"url": %q, "link": true}`, idp.URL))},
		{Name: "Signup", Kind: "test-signup", Levels: []string{"1"}},
	}, nil)
	_, page := get(t, c.client(), c.srv.URL+"/start")
	if !strings.Contains(page, ">Password</a>") || !strings.Contains(page, ">Signup</a>") || strings.Contains(page, ">Remote<") {
		t.Fatalf("chooser:\n%s", page)
	}
	_, page = get(t, c.client(), c.srv.URL+"/start?acr=strong")
	if !strings.Contains(page, `name="module" value="Remote"`) {
		t.Fatalf("acr strong does not lead to Remote:\n%s", page)
	}
	at := c.clk.Now()
	o, err := c.e.Evaluate(context.Background(), c.alice.Subject, []session.Passed{{Module: "Remote", Levels: []string{"strong"}, AMR: []string{"pwd"}, At: at}}, []string{"strong"}, at.Add(-1))
	if err != nil || !o.Satisfied || !o.AuthTime.Equal(at) || !o.Done {
		t.Fatalf("outcome %+v %v", o, err)
	}
}
