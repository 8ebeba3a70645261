package registration_test

import (
	"context"
	"encoding/json"
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
	_ "github.com/gatehouse-idp/gatehouse/chain/activation"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	_ "github.com/gatehouse-idp/gatehouse/chain/password_reset"
	_ "github.com/gatehouse-idp/gatehouse/chain/registration"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// A strong password for the policy (zxcvbn 3, 12 characters).
const strong = "violet tractor wanders 93 laps"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type nopSigner struct{}

func (nopSigner) SignClaims(string, any) (string, error) { return "token", nil }

// syncBuf is the audit trail, read by the test.
type syncBuf struct{ logtest.Buffer }

// events are the audit lines recorded so far.
func (s *syncBuf) events() []map[string]any { return s.Records(nil) }

// env is the real engine with a chain of password, registration and
// activation modules (as given), mounted on a real HTTP server: /start
// begins a sign-in, /done says who signed in with what.
type env struct {
	t        *testing.T
	st       *memstore.Store
	clk      *clock
	users    *users.Directory
	sessions *session.Manager
	outbox   *chaintest.Outbox
	trail    *syncBuf
	opt      chain.Options
	e        *chain.Engine
	srv      *httptest.Server
	alice    users.User
}

func newEnv(t *testing.T, mods []chain.ModuleConfig) *env {
	t.Helper()
	v := &env{t: t, clk: &clock{t: time.Unix(1_800_000_000, 0)}, outbox: &chaintest.Outbox{}, trail: &syncBuf{}}
	v.st = memstore.New()
	v.st.Now = v.clk.now
	t.Cleanup(func() { v.st.Close() })
	ctx := context.Background()
	var err error
	if v.sessions, err = session.NewManager(ctx, v.st, session.Options{Now: v.clk.now}); err != nil {
		t.Fatal(err)
	}
	policy := users.DefaultPasswordPolicy()
	v.users = users.NewWith(v.st, users.Options{Now: v.clk.now, Policy: &policy})
	q := logout.NewQueue(logout.QueueConfig{Store: v.st, Issuer: "https://idp.example", Signer: nopSigner{}, Now: v.clk.now})
	lo, err := logout.New(logout.Config{Store: v.st, Sessions: v.sessions, Queue: q, Now: v.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := regulate.New(v.st, nil, v.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if v.alice, err = v.users.Create(ctx, users.User{Username: "alice", Email: "alice@example.com", Name: "Alice"}, strong); err != nil {
		t.Fatal(err)
	}
	v.opt = chain.Options{Store: v.st, Sessions: v.sessions, Users: v.users, Logout: lo, Regulate: reg,
		Audit: audit.New(slog.New(slog.NewJSONHandler(v.trail, nil))), LoginPath: "/login", StaticPath: "/static", Mailer: v.outbox}
	v.mount(mods)
	return v
}

// newEnvOn is v's store, users and mail with another chain.
func newEnvOn(t *testing.T, v *env, mods []chain.ModuleConfig) *env {
	w := *v
	w.t = t
	w.mount(mods)
	return &w
}

// mount builds the engine for mods and serves it.
func (v *env) mount(mods []chain.ModuleConfig) {
	t := v.t
	mux := http.NewServeMux()
	v.srv = httptest.NewServer(mux)
	t.Cleanup(v.srv.Close)
	opt := v.opt
	opt.Issuer = v.srv.URL
	var err error
	if v.e, err = chain.New(chain.Config{Modules: mods}, opt); err != nil {
		t.Fatal(err)
	}
	chaintest.Serve(t, mux, v.e, v.sessions, chain.Request{ReturnTo: "/done", Client: "Wiki", ClientID: "wiki"})
}

// The usual chain: password or sign-up, then activation after either.
func signupChain(activation string) []chain.ModuleConfig {
	mods := []chain.ModuleConfig{
		{Name: "Sign in", Kind: "password", Levels: []string{"1"}},
		{Name: "Create an account", Kind: "registration", Levels: []string{"1"}},
	}
	if activation != "" {
		mods = append(mods, chain.ModuleConfig{Name: "Activate", Kind: "activation", Levels: []string{"1"},
			After: []string{"Sign in", "Create an account"}, Settings: json.RawMessage(activation)})
	}
	return mods
}

func (v *env) done(sub string, amr ...string) string {
	return "DONE " + sub + " " + strings.Join(amr, " ")
}

// browser is a client with cookies that follows redirects.
func (v *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func (v *env) get(b *http.Client, u string) (int, string) {
	v.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = v.srv.URL + u
	}
	resp, err := b.Get(u)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (v *env) post(b *http.Client, path string, f url.Values) (int, string) {
	v.t.Helper()
	resp, err := b.PostForm(v.srv.URL+path, f)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var (
	choiceRE = regexp.MustCompile(`<a (?:class="button" )?href="([^"]+)">([^<]+)</a>`)
	alertRE  = regexp.MustCompile(`(?s)<p class="message" role="alert">(.*?)</p>`)
	// tokenish are the per-request values of a page (sealed attempt,
	// CSRF token), left out when two pages are compared.
	tokenish = regexp.MustCompile(`(value="|attempt=)[A-Za-z0-9_%.-]{20,}`)
)

// form is page's hidden fields plus kv.
var form = chaintest.Form

func alert(page string) string {
	if m := alertRE.FindStringSubmatch(page); m != nil {
		return html.UnescapeString(strings.TrimSpace(m[1]))
	}
	return ""
}

// choose follows the choice named name on page.
func (v *env) choose(b *http.Client, page, name string) (int, string) {
	v.t.Helper()
	for _, m := range choiceRE.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[2]) == name {
			return v.get(b, html.UnescapeString(m[1]))
		}
	}
	v.t.Fatalf("no choice %q on:\n%s", name, page)
	return 0, ""
}

// open goes from page to module's page: page itself when it is that
// module's, else by the link labelled label (a choice, or an offer under
// the sign-in form).
func (v *env) open(b *http.Client, page, module, label string) string {
	v.t.Helper()
	if form(page).Get("module") == module {
		return page
	}
	_, page = v.choose(b, page, label)
	return page
}

// signupPage starts a sign-in in b and opens the sign-up form, offered
// under the sign-in form.
func (v *env) signupPage(b *http.Client) string {
	v.t.Helper()
	_, page := v.get(b, "/start")
	page = v.open(b, page, "Create an account", "Create an account")
	if !strings.Contains(page, `name="password_confirm"`) {
		v.t.Fatalf("no sign-up form:\n%s", page)
	}
	return page
}

// signUp fills in the sign-up form in a new sign-in of b.
func (v *env) signUp(b *http.Client, username, email string) (int, string) {
	v.t.Helper()
	page := v.signupPage(b)
	return v.post(b, "/login", form(page, "username", username, "email", email, "name", "New Person", "password", strong, "password_confirm", strong))
}

// lastMail is the last mail sent.
func (v *env) lastMail() chain.Mail {
	v.t.Helper()
	m, ok := v.outbox.Last()
	if !ok {
		v.t.Fatal("nothing mailed")
	}
	return m
}

// useLink opens a mailed link in b and confirms it.
func (v *env) useLink(b *http.Client, link string) (int, string) {
	v.t.Helper()
	st, page := v.get(b, link)
	if st != http.StatusOK {
		return st, page
	}
	u, _ := url.Parse(link)
	return v.post(b, u.Path, form(page))
}

// event is the last audit event of kind ev, nil when none.
func (v *env) event(ev string) map[string]any {
	evs := v.trail.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i]["event"] == ev {
			return evs[i]
		}
	}
	return nil
}

func (v *env) user(login string) users.User {
	v.t.Helper()
	u, err := v.users.Lookup(context.Background(), login)
	if err != nil {
		v.t.Fatalf("%s: %v", login, err)
	}
	return u
}

// signIn signs in with the password in a new sign-in of b.
func (v *env) signIn(b *http.Client, login string) (int, string) {
	v.t.Helper()
	_, page := v.get(b, "/start")
	page = v.open(b, page, "Sign in", "Sign in")
	return v.post(b, "/login", form(page, "username", login, "password", strong))
}
