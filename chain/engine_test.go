package chain_test

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// fixedCode is a test module kind: a second step that accepts the code in
// its "code" setting.
type fixedCode struct{ code string }

func (m fixedCode) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: "Code", Fields: []chain.Field{{Name: "code", Label: "Code", Type: "text"}}}, nil
}

func (m fixedCode) Verify(_ context.Context, a *chain.Attempt, f url.Values) (chain.Identity, error) {
	if f.Get("code") != m.code {
		return chain.Identity{}, chain.Reject("Wrong code.")
	}
	return chain.Identity{Subject: a.Subject, AMR: []string{"otp"}}, nil
}

// codeSettings are the test kinds' settings.
type codeSettings struct {
	Code      string `json:"code"`
	Mandatory bool   `json:"mandatory,omitempty"`
}

func init() {
	chain.Register("testcode", func(_ chain.Deps, s codeSettings) (chain.Module, error) {
		return fixedCode{code: s.Code}, nil
	})
}

type deps struct {
	st       *memstore.Store
	sessions *session.Manager
	users    *users.Directory
	logout   *logout.Service
	ended    *endedLog // sessions the logout service ended
	alice    users.User
	now      time.Time // the start time; see clock for the current one
	clk      *clock
}

// endedLog is a logout party that records the sessions that ended.
type endedLog struct {
	mu   sync.Mutex
	sids []string
}

func (l *endedLog) SessionEnded(_ context.Context, e logout.Ended, _ *logout.Queue) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.SID != "" {
		l.sids = append(l.sids, e.SID)
	}
	return nil
}

func (l *endedLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sids)
}

type nopSigner struct{}

func (nopSigner) SignClaims(string, any) (string, error) { return "token", nil }

// sinceOf turns a max_age into the earliest time a passed module counts.
func sinceOf(now time.Time, maxAge *time.Duration) time.Time {
	if maxAge == nil {
		return time.Time{}
	}
	return now.Add(-*maxAge)
}

// clock is a fake clock shared by the store, the sessions and the users.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newDeps(t *testing.T) *deps {
	return newDepsWith(t, session.Options{})
}

// newDepsWith builds the store, sessions (with opt, on the fake clock),
// users, and the user alice with password "pw".
func newDepsWith(t *testing.T, opt session.Options) *deps {
	t.Helper()
	d := &deps{now: time.Unix(1_800_000_000, 0)}
	d.clk = &clock{t: d.now}
	d.st = memstore.New()
	d.st.Now = d.clk.Now
	t.Cleanup(func() { d.st.Close() })
	opt.Now = d.clk.Now
	var err error
	if d.sessions, err = session.NewManager(context.Background(), d.st, opt); err != nil {
		t.Fatal(err)
	}
	d.users = users.New(d.st, d.clk.Now)
	q := logout.NewQueue(logout.QueueConfig{Store: d.st, Issuer: "https://idp.example", Signer: nopSigner{}, Now: d.clk.Now})
	if d.logout, err = logout.New(logout.Config{Store: d.st, Sessions: d.sessions, Queue: q, Now: d.clk.Now}); err != nil {
		t.Fatal(err)
	}
	d.ended = &endedLog{}
	d.logout.Subscribe(d.ended)
	if d.alice, err = d.users.Create(context.Background(), users.User{Username: "alice", Email: "alice@example.com"}, "pw"); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *deps) engine(t *testing.T, cfg chain.Config) *chain.Engine {
	t.Helper()
	e, err := chain.New(cfg, chain.Options{Store: d.st, Sessions: d.sessions, Users: d.users, Logout: d.logout, LoginPath: "/login", StaticPath: "/static"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mod(name, kind string, levels []string, after ...string) chain.ModuleConfig {
	return chain.ModuleConfig{Name: name, Kind: kind, Levels: levels, After: after, Settings: settingsFor(kind)}
}

func settingsFor(kind string) json.RawMessage {
	if kind == "testcode" {
		return json.RawMessage(`{"code": "123456"}`)
	}
	return nil
}

func TestEvaluate(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Code", Kind: "testcode", Levels: []string{"2"}, After: []string{"Password"}, ShowOnlyWhenNeeded: true, Settings: settingsFor("testcode")},
	}})
	if got := e.Levels(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("levels %v", got)
	}
	pwd := session.Passed{Module: "Password", Kind: "password", Levels: []string{"1"}, AMR: []string{"pwd"}, At: d.now.Add(-time.Hour)}
	code := session.Passed{Module: "Code", Kind: "testcode", Levels: []string{"2"}, AMR: []string{"otp"}, At: d.now.Add(-time.Minute)}
	ten := 10 * time.Minute
	cases := []struct {
		name      string
		passed    []session.Passed
		acr       []string
		maxAge    *time.Duration
		done, sat bool
		acrOut    string
		amr       []string
	}{
		{"nothing passed", nil, nil, nil, false, false, "", nil},
		{"password, no request", []session.Passed{pwd}, nil, nil, true, true, "1", []string{"pwd"}},
		{"password, asks 1", []session.Passed{pwd}, []string{"1"}, nil, true, true, "1", []string{"pwd"}},
		{"password, asks 2: step-up", []session.Passed{pwd}, []string{"2"}, nil, false, false, "1", []string{"pwd"}},
		{"both, asks 2", []session.Passed{pwd, code}, []string{"2"}, nil, true, true, "2", []string{"pwd", "otp", "mfa"}},
		{"both, asks 2 or 1: first satisfied", []session.Passed{pwd, code}, []string{"1", "2"}, nil, true, true, "1", []string{"pwd", "otp", "mfa"}},
		{"both, no request: highest", []session.Passed{pwd, code}, nil, nil, true, true, "2", []string{"pwd", "otp", "mfa"}},
		{"unknown level asked", []session.Passed{pwd}, []string{"9"}, nil, true, false, "1", []string{"pwd"}},
		// The level-2 module is fresh, but the start module must be passed again.
		{"max_age drops the old password", []session.Passed{pwd, code}, []string{"2"}, &ten, false, true, "2", []string{"otp"}},
		{"removed module ignored", []session.Passed{{Module: "Gone", Levels: []string{"2"}, At: d.now}}, nil, nil, false, false, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := e.Evaluate(context.Background(), d.alice.Subject, tc.passed, tc.acr, sinceOf(d.clk.Now(), tc.maxAge))
			if err != nil {
				t.Fatal(err)
			}
			if o.Done != tc.done || o.Satisfied != tc.sat || o.ACR != tc.acrOut || !slices.Equal(o.AMR, tc.amr) {
				t.Fatalf("outcome %+v, want done=%v satisfied=%v acr=%q amr=%v", o, tc.done, tc.sat, tc.acrOut, tc.amr)
			}
		})
	}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// loginServer mounts the engine at /login and a /start that begins an
// attempt for acr_values from the query; /done is the return address.
func loginServer(t *testing.T, e *chain.Engine) (*httptest.Server, *http.Client) {
	mux := http.NewServeMux()
	mux.Handle("/login", e)
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := e.Start(w, r, chain.Request{ReturnTo: "/done", AcrValues: strings.Fields(q.Get("acr")), ForceLogin: q.Has("force"), Client: "Test"}); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "DONE") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return srv, &http.Client{Jar: jar}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, f url.Values) (int, string) {
	resp, err := c.PostForm(u, f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

var form = chaintest.Form

func TestLoginFlowWithStepUp(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Code", Kind: "testcode", Levels: []string{"2"}, After: []string{"Password"}, ShowOnlyWhenNeeded: true, Settings: settingsFor("testcode")},
	}})
	srv, c := loginServer(t, e)

	// Level 1: password only, then back to the caller.
	_, page := get(t, c, srv.URL+"/start")
	if !strings.Contains(page, `name="password"`) || strings.Contains(page, `name="code"`) {
		t.Fatalf("first page:\n%s", page)
	}
	// Skipping ahead: posting the code step before the password is refused.
	if st, body := post(t, c, srv.URL+"/login", form(page, "module", "Code", "code", "123456")); st != 400 || !strings.Contains(body, "not available") {
		t.Fatalf("skip ahead: %d", st)
	}
	st, body := post(t, c, srv.URL+"/login", form(page, "username", "alice", "password", "pw"))
	if st != 200 || body != "DONE" {
		t.Fatalf("after password: %d %s", st, body)
	}

	// Step-up to level 2 with the session: only the code is asked.
	_, page = get(t, c, srv.URL+"/start?acr=2")
	if strings.Contains(page, `name="password"`) || !strings.Contains(page, `name="code"`) {
		t.Fatalf("step-up page:\n%s", page)
	}
	if st, body := post(t, c, srv.URL+"/login", form(page, "code", "000000")); st != 401 || !strings.Contains(body, "Wrong code.") {
		t.Fatalf("wrong code: %d", st)
	}
	if st, body := post(t, c, srv.URL+"/login", form(page, "code", "123456")); st != 200 || body != "DONE" {
		t.Fatalf("right code: %d %s", st, body)
	}
}

func TestLoginFailuresAndTampering(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.DefaultConfig())
	srv, c := loginServer(t, e)
	_, page := get(t, c, srv.URL+"/start")
	f := form(page, "username", "alice", "password", "wrong")

	_, wrongPw := post(t, c, srv.URL+"/login", f)
	_, unknown := post(t, c, srv.URL+"/login", form(page, "username", "mallory", "password", "wrong"))
	msg := regexp.MustCompile(`role="alert">([^<]*)<`)
	if m1, m2 := msg.FindStringSubmatch(wrongPw), msg.FindStringSubmatch(unknown); m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Fatalf("messages differ: %v vs %v", m1, m2)
	}
	for name, bad := range map[string]url.Values{
		"no csrf":        form(page, "csrf", "", "username", "alice", "password", "pw"),
		"other attempt":  form(page, "attempt", "someone-elses", "username", "alice", "password", "pw"),
		"unknown module": form(page, "module", "Admin", "username", "alice", "password", "pw"),
	} {
		if st, _ := post(t, c, srv.URL+"/login", bad); st < 400 || st > 499 {
			t.Errorf("%s: status %d, want 4xx", name, st)
		}
	}
	// Another browser cannot finish this browser's attempt.
	jar, _ := cookiejar.New(nil)
	other := &http.Client{Jar: jar}
	if st, _ := post(t, other, srv.URL+"/login", form(page, "username", "alice", "password", "pw")); st != 400 {
		t.Fatalf("attempt from another browser: %d", st)
	}
	// (Limits on guessing are regulation's: TestGuessingIsSlowedThenBanned.)
	if _, err := d.sessions.Get(context.Background(), "x"); !errors.Is(err, session.ErrNoSession) {
		t.Fatal(err)
	}
}

func TestChooserAndDisabledModule(t *testing.T) {
	d := newDeps(t)
	code := func(name string, disabled bool) chain.ModuleConfig {
		return chain.ModuleConfig{Name: name, Kind: "testcode", Levels: []string{"2"}, After: []string{"Password"},
			ShowOnlyWhenNeeded: true, Disabled: disabled, Settings: settingsFor("testcode")}
	}
	e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}), code("Authenticator app", false), code("Security key", false), code("Old SMS", true),
	}})
	srv, c := loginServer(t, e)
	_, page := get(t, c, srv.URL+"/start")
	post(t, c, srv.URL+"/login", form(page, "username", "alice", "password", "pw"))

	// Two ways to level 2: the person chooses; the disabled one is not shown.
	_, page = get(t, c, srv.URL+"/start?acr=2")
	if !strings.Contains(page, "Authenticator app") || !strings.Contains(page, "Security key") || strings.Contains(page, "Old SMS") {
		t.Fatalf("chooser:\n%s", page)
	}
	link := regexp.MustCompile(`href="([^"]*module=Security[^"]*)"`).FindStringSubmatch(page)
	if link == nil {
		t.Fatalf("no link to a module:\n%s", page)
	}
	_, page = get(t, c, srv.URL+html.UnescapeString(link[1]))
	if !strings.Contains(page, `name="code"`) || !strings.Contains(page, `value="Security key"`) {
		t.Fatalf("chosen module page:\n%s", page)
	}
	// Calling the disabled module directly is refused, by GET and POST.
	attempt := form(page).Get("attempt")
	if st, _ := get(t, c, srv.URL+"/login?attempt="+attempt+"&module=Old+SMS"); st != 400 {
		t.Fatalf("GET disabled module: %d", st)
	}
	if st, _ := post(t, c, srv.URL+"/login", form(page, "module", "Old SMS", "code", "123456")); st != 400 {
		t.Fatalf("POST disabled module: %d", st)
	}
	if st, body := post(t, c, srv.URL+"/login", form(page, "code", "123456")); st != 200 || body != "DONE" {
		t.Fatalf("chosen module: %d %s", st, body)
	}
}

func TestConcurrentAttemptsInTwoTabs(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.DefaultConfig())
	srv, c := loginServer(t, e)
	_, tab1 := get(t, c, srv.URL+"/start")
	_, tab2 := get(t, c, srv.URL+"/start")
	if form(tab1).Get("attempt") == form(tab2).Get("attempt") {
		t.Fatal("two tabs share an attempt")
	}
	for i, page := range []string{tab2, tab1} {
		if st, body := post(t, c, srv.URL+"/login", form(page, "username", "alice", "password", "pw")); st != 200 || body != "DONE" {
			t.Fatalf("tab %d: %d %s", i, st, body)
		}
	}
	// A finished attempt cannot be replayed.
	if st, _ := post(t, c, srv.URL+"/login", form(tab1, "username", "alice", "password", "pw")); st == 200 {
		t.Fatal("replayed finished attempt accepted")
	}
}

func TestRemember(t *testing.T) {
	for _, mode := range []string{chain.RememberSession, chain.RememberPersistent} {
		t.Run(mode, func(t *testing.T) {
			d := newDeps(t)
			if _, err := d.users.Create(context.Background(), users.User{Username: "bob"}, "bob-pw"); err != nil {
				t.Fatal(err)
			}
			e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
				mod("Password", "password", []string{"1"}),
				{Name: "Code", Kind: "testcode", Levels: []string{"2"}, After: []string{"Password"}, Remember: mode,
					RememberFor: time.Hour, Settings: settingsFor("testcode")},
			}})
			srv, c := loginServer(t, e)
			// trust ticks "Trust this browser" on the code's page.
			trust := true
			login := func(user, pw string, wantCode bool) {
				t.Helper()
				_, page := get(t, c, srv.URL+"/start")
				st, page := post(t, c, srv.URL+"/login", form(page, "username", user, "password", pw))
				if asked := strings.Contains(page, `name="code"`); asked != wantCode {
					t.Fatalf("%s: code asked = %v, want %v (%d)", user, asked, wantCode, st)
				}
				if wantCode {
					if !strings.Contains(page, `name="remember"`) || strings.Contains(page, "checked") {
						t.Fatalf("no unticked trust box on the code's page:\n%s", page)
					}
					f := form(page, "code", "123456")
					if trust {
						f.Set("remember", "on")
					}
					if st, body := post(t, c, srv.URL+"/login", f); body != "DONE" {
						t.Fatalf("code: %d %s", st, body)
					}
				}
			}
			// dropSSO forgets the SSO session but keeps device cookies.
			u, _ := url.Parse(srv.URL)
			dropSSO := func() {
				var keep []*http.Cookie
				for _, ck := range c.Jar.Cookies(u) {
					if strings.Contains(ck.Name, "device") {
						keep = append(keep, ck)
					}
				}
				c.Jar, _ = cookiejar.New(nil)
				c.Jar.SetCookies(u, keep)
			}
			// Not ticked: the browser is not trusted.
			trust = false
			login("alice", "pw", true)
			dropSSO()
			trust = true
			login("alice", "pw", true)
			dropSSO()
			login("alice", "pw", false) // trusted device: no code
			dropSSO()
			login("bob", "bob-pw", true) // alice's trust is not bob's
			// A password change voids the trust. (The trust is tied to
			// PasswordChangedAt, so the clock must move.)
			d.clk.add(time.Second)
			d.users.SetPassword(context.Background(), d.alice.Subject, "pw2")
			dropSSO()
			login("alice", "pw2", true)
			// Forget revokes it.
			dropSSO()
			login("alice", "pw2", false)
			if n, err := chain.Forget(context.Background(), d.st, d.alice.Subject); err != nil || n == 0 {
				t.Fatalf("forget: %d %v", n, err)
			}
			dropSSO()
			login("alice", "pw2", true)
		})
	}
}
