package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/freeport"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
)

func TestBackchannelRetriesAndGivesUp(t *testing.T) {
	var good atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("logout_token") != "" {
			good.Add(1)
		}
	}))
	defer recv.Close()
	// A port nobody listens on: the client is unreachable.
	dead := "http://127.0.0.1:" + strconv.Itoa(freeport.Must(t)) + "/logout"

	e := newEnvWith(t, envSetup{path: "/idp", queue: func(q *logout.QueueConfig) {
		q.Attempts, q.Backoff = 3, 20*time.Millisecond
	}})
	ctx := context.Background()
	for id, uri := range map[string]string{"good": recv.URL + "/bcl", "dead": dead} {
		if err := e.clients.Add(ctx, provider.Client{ID: id, RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: uri, ClientSettings: firstParty}, "secret-"+id); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	e.login(b, authParams("dead"))
	e.login(b, authParams("good"))

	run, stop := context.WithCancel(ctx)
	defer stop()
	go e.logout.Run(run)

	// End the session (confirmation form, CSRF, POST).
	resp, page := b.get(e.issuer + "/logout")
	f := loginForm(page)
	resp, page = b.post(e.issuer+"/logout", f)
	if resp.StatusCode != 200 || !strings.Contains(page, "signed out") {
		t.Fatalf("logout: %d %s", resp.StatusCode, page)
	}
	deadline := time.Now().Add(10 * time.Second)
	stats := &e.logout.Queue().Stats
	for time.Now().Before(deadline) && (good.Load() < 1 || stats.GivenUp.Load() < 1) {
		e.clock.Advance(time.Second) // the back-off runs on the provider's clock
		time.Sleep(20 * time.Millisecond)
	}
	if good.Load() != 1 || stats.GivenUp.Load() != 1 || stats.Failed.Load() != 3 {
		t.Fatalf("delivered %d, failed %d, given up %d", good.Load(), stats.Failed.Load(), stats.GivenUp.Load())
	}
}

func TestLogoutDuringAuthorization(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.login(b, authParams("conf"))
	// An authorization is in flight (the login page of prompt=login)...
	resp, page := b.get(e.authURL(with(authParams("conf"), "prompt", "login")))
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("no login page: %d", resp.StatusCode)
	}
	// ...when the user signs out in another tab.
	_, lp := b.get(e.issuer + "/logout")
	b.post(e.issuer+"/logout", loginForm(lp))
	// Going on in the first tab needs a full login: no code for the
	// ended session.
	f := loginForm(page)
	f.Set("username", "alice")
	f.Set("password", "wrong")
	resp, page = b.post(e.issuer+"/login", f)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password after logout: %d", resp.StatusCode)
	}
	resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if cb := callbackQuery(t, resp, page); cb.Get("error") != "login_required" {
		t.Fatalf("prompt=none after logout: %v", cb)
	}
}

func TestLogoutDiscovery(t *testing.T) {
	e := newEnv(t, "")
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		EndSession string `json:"end_session_endpoint"`
		BCL        bool   `json:"backchannel_logout_supported"`
		BCLSession bool   `json:"backchannel_logout_session_supported"`
		Claims     bool   `json:"claims_parameter_supported"`
	}
	if err := jsonDecode(resp, &d); err != nil {
		t.Fatal(err)
	}
	if d.EndSession != e.issuer+"/logout" || !d.BCL || !d.BCLSession || !d.Claims {
		t.Fatalf("discovery %+v", d)
	}
}

func TestExpiredSessionIsLoggedOut(t *testing.T) {
	var got atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("logout_token") != "" {
			got.Add(1)
		}
	}))
	defer recv.Close()
	e := newEnvWith(t, envSetup{path: "/idp", logout: func(c *logout.Config) { c.SweepEvery = time.Second }})
	ctx := context.Background()
	if err := e.clients.Add(ctx, provider.Client{ID: "bc", RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: recv.URL, ClientSettings: firstParty}, "s"); err != nil {
		t.Fatal(err)
	}
	e.login(e.browser(), authParams("bc"))
	run, stop := context.WithCancel(ctx)
	defer stop()
	go e.logout.Run(run)
	time.Sleep(1500 * time.Millisecond)
	if got.Load() != 0 {
		t.Fatal("logout token for a live session")
	}
	e.clock.Advance(25 * time.Hour) // past the 24h idle limit
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got.Load() != 1 {
		t.Fatalf("expired session: %d logout tokens", got.Load())
	}
}

func TestFrontchannelLogout(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if err := e.clients.Add(ctx, provider.Client{ID: "fc", RedirectURIs: []string{redirectURI},
		ClientSettings:         provider.ClientSettings{FirstParty: true, FrontchannelLogoutSessionRequired: true},
		PostLogoutRedirectURIs: []string{"https://app.example/bye"}, FrontchannelLogoutURI: "https://fc.example/logout?x=1"}, "s"); err != nil {
		t.Fatal(err)
	}
	// A second client without frontchannel_logout_session_required: its
	// page loads without iss and sid.
	if err := e.clients.Add(ctx, provider.Client{ID: "fc2", RedirectURIs: []string{redirectURI}, ClientSettings: firstParty,
		FrontchannelLogoutURI: "https://fc2.example/logout"}, "s"); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	e.login(b, authParams("fc2"))
	cb := e.login(b, authParams("fc"))
	f := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	_, tok := e.token(f, "fc", "s")
	claims := e.verifyIDToken(tok["id_token"].(string), "RS256")
	resp, page := b.get(e.issuer + "/logout?" + url.Values{"id_token_hint": {tok["id_token"].(string)},
		"post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"z"}}.Encode())
	want := `src="https://fc.example/logout?iss=` + url.QueryEscape(e.issuer) + `&amp;sid=` + claims["sid"].(string) + `&amp;x=1"`
	if resp.StatusCode != 200 || !strings.Contains(page, want) {
		t.Fatalf("logged-out page (%d) lacks %s:\n%s", resp.StatusCode, want, page)
	}
	if !strings.Contains(page, `src="https://fc2.example/logout"`) {
		t.Fatalf("logged-out page lacks the plain front-channel URI of fc2:\n%s", page)
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-src https://fc2.example https://fc.example") {
		t.Fatalf("CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	if !strings.Contains(page, `content="3;url=https://app.example/bye?state=z"`) {
		t.Fatalf("no way on to the client:\n%s", page)
	}
}

var sidInput = regexp.MustCompile(`name="sid" value="([^"]+)"`)

func TestAccountPage(t *testing.T) {
	e := newEnv(t, "")
	b1, b2 := e.browser(), e.browser()
	e.login(b1, authParams("conf"))
	e.login(b2, authParams("spa"))
	// Without a session the page asks to sign in first.
	if _, page := e.browser().get(e.issuer + "/account"); !strings.Contains(page, `name="password"`) {
		t.Fatal("account page without session")
	}
	_, page := b1.get(e.issuer + "/account")
	if strings.Count(page, `name="sid"`) != 2 || !strings.Contains(page, "This browser") || !strings.Contains(page, "spa") {
		t.Fatalf("account page:\n%s", page)
	}
	f := loginForm(page)
	// CSRF is checked.
	if resp, _ := b1.post(e.issuer+"/account", url.Values{"action": {"others"}, "csrf": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no CSRF: %d", resp.StatusCode)
	}
	f.Set("action", "others")
	if resp, _ := b1.post(e.issuer+"/account", f); resp.StatusCode != 200 {
		t.Fatalf("sign out others: %d", resp.StatusCode)
	}
	// The other browser is signed out, this one is not.
	if resp, page := b2.get(e.authURL(with(authParams("conf"), "prompt", "none"))); callbackQuery(t, resp, page).Get("error") != "login_required" {
		t.Fatal("other browser still signed in")
	}
	_, page = b1.get(e.issuer + "/account")
	if strings.Count(page, `name="sid"`) != 1 {
		t.Fatalf("after sign out others:\n%s", page)
	}
	// Signing out this session by its button.
	f = loginForm(page)
	f.Set("sid", sidInput.FindStringSubmatch(page)[1])
	f.Set("action", "end")
	b1.post(e.issuer+"/account", f)
	if resp, page := b1.get(e.authURL(with(authParams("conf"), "prompt", "none"))); callbackQuery(t, resp, page).Get("error") != "login_required" {
		t.Fatal("still signed in after signing out here")
	}
}

func TestSessionState(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	cb := e.login(b, authParams("conf"))
	ss := cb.Get("session_state")
	_, salt, ok := strings.Cut(ss, ".")
	if !ok || salt == "" {
		t.Fatalf("session_state %q", ss)
	}
	u, _ := url.Parse(e.issuer)
	var bs string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "gatehouse-bs" {
			bs = c.Value
		}
	}
	if bs == "" || provider.SessionState("conf", "https://app.example", bs, salt) != ss {
		t.Fatalf("session_state %q does not match browser state %q", ss, bs)
	}
	// Sign-out changes the browser state: the RP's check says "changed".
	_, lp := b.get(e.issuer + "/logout")
	b.post(e.issuer+"/logout", loginForm(lp))
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "gatehouse-bs" && provider.SessionState("conf", "https://app.example", c.Value, salt) == ss {
			t.Fatal("browser state unchanged after sign-out")
		}
	}
	resp, err := http.Get(e.issuer + "/check_session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors *") {
		t.Fatalf("check_session: %d %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}

func TestLogoutHints(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if _, err := e.users.Create(ctx, usersUser("bob"), "bob-password"); err != nil {
		t.Fatal(err)
	}
	idTokenOf := func(b *browser, user, pw string) string {
		resp, page := b.get(e.authURL(authParams("conf")))
		if strings.Contains(page, `name="password"`) {
			f := loginForm(page)
			f.Set("username", user)
			f.Set("password", pw)
			resp, page = b.post(e.issuer+"/login", f)
		}
		_, tok := e.token(codeForm(callbackQuery(t, resp, page).Get("code")), "conf", confSecret)
		return tok["id_token"].(string)
	}
	alice := e.browser()
	aliceToken := idTokenOf(alice, "alice", alicePassword)
	bobToken := idTokenOf(e.browser(), "bob", "bob-password")

	// A hint for another user does not end alice's session unasked.
	_, page := alice.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(bobToken))
	if !strings.Contains(page, "Do you want to sign out") {
		t.Fatalf("hint for another user:\n%s", page)
	}
	// An expired hint still names the session (RP-Initiated Logout §2):
	// no question asked.
	e.clock.Advance(time.Hour)
	_, page = alice.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(aliceToken))
	if !strings.Contains(page, "You are signed out") {
		t.Fatalf("expired hint of the session:\n%s", page)
	}
}

func TestAccountSignOutsLoadFrontchannelPages(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if err := e.clients.Add(ctx, provider.Client{ID: "fc", RedirectURIs: []string{redirectURI},
		ClientSettings:        provider.ClientSettings{FirstParty: true, FrontchannelLogoutSessionRequired: true},
		FrontchannelLogoutURI: "https://fc.example/logout"}, "s"); err != nil {
		t.Fatal(err)
	}
	here, there := e.browser(), e.browser()
	e.login(here, authParams("conf"))
	e.login(there, authParams("fc"))
	thereSID := ""
	if list, err := e.sessions.ListFor(ctx, e.alice.Subject); err == nil {
		for _, s := range list {
			if slices.Contains(s.Clients, "fc") {
				thereSID = s.ID
			}
		}
	}
	// "Sign out everywhere else" from the first browser: the other
	// session's client is signed out in a front-channel frame too.
	_, acct := here.get(e.issuer + "/account")
	f := loginForm(acct)
	f.Set("action", "others")
	resp, page := here.post(e.issuer+"/account", f)
	want := `src="https://fc.example/logout?iss=` + url.QueryEscape(e.issuer) + `&amp;sid=` + thereSID + `"`
	if resp.StatusCode != 200 || thereSID == "" || !strings.Contains(page, want) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-src https://fc.example") {
		t.Fatalf("sign out everywhere else (%d) lacks %s:\n%s", resp.StatusCode, want, page)
	}
	// "Sign out here" with only clients without front-channel pages goes
	// straight back to the account page.
	_, acct = here.get(e.issuer + "/account")
	f = loginForm(acct)
	f.Set("action", "end")
	f.Set("sid", sidInput.FindStringSubmatch(acct)[1])
	if resp, _ := here.post(e.issuer+"/account", f); resp.StatusCode != 200 {
		t.Fatalf("sign out here: %d", resp.StatusCode)
	}
}
