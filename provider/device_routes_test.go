package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
)

func TestDeviceAuthorizationRequests(t *testing.T) {
	e, _ := newDeviceEnv(t)
	post := func(ct, body, user, pass string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/device_authorization", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if user != "" {
			req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
		}
		return doJSON(t, req)
	}
	const form = "application/x-www-form-urlencoded"
	cases := []struct {
		name, ct, body, user, pass string
		status                     int
		err                        string
	}{
		{"public client", form, "client_id=tv&scope=openid", "", "", 200, ""},
		{"confidential client, basic", form, "scope=openid", "cli", cliSecret, 200, ""},
		{"confidential client, post", form, "client_id=cli&client_secret=" + cliSecret, "", "", 200, ""},
		{"confidential client without its secret", form, "client_id=cli", "", "", 401, "invalid_client"},
		{"confidential client, wrong secret", form, "", "cli", "nope", 401, "invalid_client"},
		{"public client with a secret", form, "client_id=tv&client_secret=x", "", "", 401, "invalid_client"},
		{"no client", form, "scope=openid", "", "", 401, "invalid_client"},
		{"unknown client", form, "client_id=radio", "", "", 401, "invalid_client"},
		{"public client not allowed the grant", form, "client_id=spa", "", "", 400, "unauthorized_client"},
		{"confidential client not allowed the grant", form, "", "conf", confSecret, 400, "unauthorized_client"},
		{"client_id repeated", form, "client_id=tv&client_id=tv", "", "", 400, "invalid_request"},
		{"scope too long", form, "client_id=tv&scope=" + strings.Repeat("s", 1100), "", "", 400, "invalid_request"},
		{"not a form", "application/json", `{"client_id":"tv"}`, "", "", 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := post(tc.ct, tc.body, tc.user, tc.pass)
			if resp.StatusCode != tc.status || str(m, "error") != tc.err {
				t.Fatalf("%d %v, want %d %q", resp.StatusCode, m, tc.status, tc.err)
			}
		})
	}
	resp, err := http.Get(e.issuer + "/device_authorization")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d %q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// The token endpoint's side.
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		err    string
	}{
		{"client not allowed the grant", url.Values{"client_id": {"spa"}, "device_code": {"x"}}, 400, "unauthorized_client"},
		{"no device_code", url.Values{"client_id": {"tv"}}, 400, "invalid_request"},
		{"unknown device_code", url.Values{"client_id": {"tv"}, "device_code": {strings.Repeat("A", 43)}}, 400, "invalid_grant"},
		{"oversized device_code", url.Values{"client_id": {"tv"}, "device_code": {strings.Repeat("A", 4000)}}, 400, "invalid_grant"},
	} {
		t.Run("token: "+tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", provider.GrantDeviceCode)
			resp, m := e.token(tc.form, "", "")
			if resp.StatusCode != tc.status || str(m, "error") != tc.err {
				t.Fatalf("%d %v, want %d %q", resp.StatusCode, m, tc.status, tc.err)
			}
		})
	}

	// Discovery tells clients where and what.
	d := e.discovery()
	if d["device_authorization_endpoint"] != e.issuer+"/device_authorization" ||
		!strings.Contains(strings.Join(strList(d["grant_types_supported"]), " "), provider.GrantDeviceCode) {
		t.Errorf("discovery: %v %v", d["device_authorization_endpoint"], d["grant_types_supported"])
	}
}

func TestDeviceVerificationForms(t *testing.T) {
	e, _ := newDeviceEnv(t)
	da := e.startDevice("openid")
	uc := str(da, "user_code")
	b := e.browser()

	// The code form: no token, or another browser's, is refused and the
	// form shown again.
	resp, page := b.get(e.issuer + "/device")
	other := e.browser()
	_, otherPage := other.get(e.issuer + "/device")
	for name, fields := range map[string]url.Values{
		"no csrf":                   {"csrf": {""}, "user_code": {uc}},
		"another browser's csrf":    {"csrf": {loginForm(otherPage).Get("csrf")}, "user_code": {uc}},
		"the csrf of another form":  {"csrf": {otherFirst(loginForm(page).Get("csrf"))}, "user_code": {uc}},
		"no csrf field, code typed": {"user_code": {uc}, "csrf": nil},
	} {
		f := loginForm(page)
		for k, v := range fields {
			if v == nil {
				delete(f, k)
			} else {
				f[k] = v
			}
		}
		resp, body := b.post(e.issuer+"/device", f)
		if resp.StatusCode != 403 || !strings.Contains(body, "This form has expired") || !strings.Contains(body, `name="user_code"`) {
			t.Errorf("%s: %d\n%s", name, resp.StatusCode, body)
		}
	}

	// The allow form: no token, or a token for another decision, changes
	// nothing.
	resp, page = e.enterCode(b, e.issuer+"/device", uc)
	allow := loginForm(page)
	if allow.Get("csrf") == "" || allow.Get("req") == "" {
		t.Fatalf("allow page fields %v", allow)
	}
	da2 := e.startDevice("openid")
	_, page2 := e.enterCode(b, e.issuer+"/device", str(da2, "user_code"))
	for name, f := range map[string]url.Values{
		"no csrf":                  {"req": {allow.Get("req")}, "decision": {"allow"}},
		"csrf of another decision": {"req": {allow.Get("req")}, "csrf": {loginForm(page2).Get("csrf")}, "decision": {"allow"}},
	} {
		resp, body := b.post(e.issuer+"/device", f)
		if resp.StatusCode != 403 || !strings.Contains(body, "This form has expired") {
			t.Errorf("allow with %s: %d\n%s", name, resp.StatusCode, body)
		}
	}
	if got := e.pollError(str(da, "device_code")); got != "authorization_pending" {
		t.Fatalf("after refused forms: %s", got)
	}
	// The sealed request belongs to this browser.
	if resp, body := other.get(e.issuer + "/device?req=" + url.QueryEscape(allow.Get("req"))); resp.StatusCode != 400 || !strings.Contains(body, "another browser") {
		t.Errorf("allow page in another browser: %d\n%s", resp.StatusCode, body)
	}
	for _, req := range []string{"garbage", strings.Repeat("A", 200)} {
		if resp, _ := b.get(e.issuer + "/device?req=" + req); resp.StatusCode != 400 {
			t.Errorf("forged req %q: %d", req, resp.StatusCode)
		}
	}
	// An answer that is neither.
	f := loginForm(page)
	f.Set("decision", "maybe")
	if resp, _ := b.post(e.issuer+"/device", f); resp.StatusCode != 400 {
		t.Errorf("decision maybe: %d", resp.StatusCode)
	}
	if resp, _ := e.decide(b, resp, page, "allow"); resp.StatusCode != 200 {
		t.Fatalf("allow: %d", resp.StatusCode)
	}
	// Allowing again (the form replayed) does nothing more.
	if resp, body := e.decide(b, resp, page, "deny"); resp.StatusCode != 400 || !strings.Contains(body, "expired or was already used") {
		t.Errorf("second answer: %d\n%s", resp.StatusCode, body)
	}
	e.clock.Advance(5 * time.Second)
	if status, m := e.poll(str(da, "device_code"), "tv", ""); status != 200 {
		t.Errorf("poll after allow: %d %v", status, m)
	}

	req, _ := http.NewRequest(http.MethodPut, e.issuer+"/device", nil)
	if resp, _ := b.do(req); resp.StatusCode != 405 {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
}

func TestDeviceAndTheSession(t *testing.T) {
	e, _ := newDeviceEnv(t)
	ctx := context.Background()
	sid := func() string {
		list, err := e.sessions.ListFor(ctx, e.alice.Subject)
		if err != nil || len(list) != 1 {
			t.Fatalf("sessions %v %v", list, err)
		}
		return list[0].ID
	}

	// The session ends while the allow page is open: nothing is allowed.
	da := e.startDevice("openid")
	b := e.browser()
	resp, page := e.enterCode(b, e.issuer+"/device", str(da, "user_code"))
	if err := e.logout.End(ctx, sid(), logout.ByUser); err != nil {
		t.Fatal(err)
	}
	resp, page = e.decide(b, resp, page, "allow")
	if resp.StatusCode != 403 || !strings.Contains(page, "was not connected") {
		t.Fatalf("allow after the session ended: %d\n%s", resp.StatusCode, page)
	}
	if got := e.pollError(str(da, "device_code")); got != "authorization_pending" {
		t.Fatalf("poll: %s", got)
	}

	// The session ends after the device was allowed, before it polled:
	// no tokens.
	resp, page = e.enterCode(b, e.issuer+"/device", str(da, "user_code"))
	e.decide(b, resp, page, "allow")
	if err := e.logout.End(ctx, sid(), logout.ByUser); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	if got := e.pollError(str(da, "device_code")); got != "invalid_grant" {
		t.Fatalf("poll after the session ended: %s", got)
	}

	// Tokens the device got die with the session (no offline_access).
	da = e.startDevice("openid")
	resp, page = e.enterCode(b, e.issuer+"/device", str(da, "user_code"))
	e.decide(b, resp, page, "allow")
	status, tok := e.poll(str(da, "device_code"), "tv", "")
	if status != 200 {
		t.Fatalf("poll: %d %v", status, tok)
	}
	if err := e.logout.End(ctx, sid(), logout.ByUser); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.userinfo(str(tok, "access_token")); resp.StatusCode != 401 {
		t.Errorf("access token after logout: %d", resp.StatusCode)
	}
	rf := refreshForm(str(tok, "refresh_token"))
	rf.Set("client_id", "tv")
	if resp, m := e.token(rf, "", ""); resp.StatusCode != 400 {
		t.Errorf("refresh after logout: %d %v", resp.StatusCode, m)
	}
}

func TestUserCodeGuessingIsRegulated(t *testing.T) {
	e, trail := newDeviceEnv(t, withRegulation, func(c *provider.Config) { c.DeviceCodeTTL = time.Hour })
	da := e.startDevice("openid")
	b := e.browser()
	_, page := b.get(e.issuer + "/device")
	csrf := loginForm(page).Get("csrf")
	try := func(code string) (*http.Response, string) {
		return b.post(e.issuer+"/device", url.Values{"csrf": {csrf}, "user_code": {code}})
	}
	// A guesser trying once a second for ten minutes gets few codes
	// checked; the rest are refused unchecked.
	checked, refused := 0, 0
	for range 600 {
		resp, body := try("BCDF-BCDF")
		switch resp.StatusCode {
		case 400:
			checked++
		case 429:
			refused++
			if !strings.Contains(body, "Too many wrong codes") {
				t.Fatalf("refusal page:\n%s", body)
			}
		default:
			t.Fatalf("guess: %d\n%s", resp.StatusCode, body)
		}
		e.clock.Advance(time.Second)
	}
	if checked > 20 || checked < 10 || refused == 0 {
		t.Fatalf("in 10 minutes: %d codes checked, %d refused", checked, refused)
	}
	if got := trail.count(audit.UserCodeFailed, `"ip":"127.0.0.1"`); got != checked {
		t.Errorf("%d user_code_failed lines for %d wrong codes", got, checked)
	}
	if trail.count(audit.Banned, "device user code") == 0 {
		t.Error("no ban audited")
	}
	// While banned, the right code is refused too; afterwards it works.
	if resp, _ := try(str(da, "user_code")); resp.StatusCode != 429 {
		t.Fatalf("right code while banned: %d", resp.StatusCode)
	}
	e.clock.Advance(10 * time.Minute)
	resp, body := try(str(da, "user_code"))
	if resp.StatusCode == 200 && strings.Contains(body, `name="password"`) {
		resp, body = b.submitLogin(resp, body, alicePassword)
	}
	if resp.StatusCode != 200 || !strings.Contains(body, `value="allow"`) {
		t.Fatalf("right code after the ban: %d\n%s", resp.StatusCode, body)
	}
}

// Unauthenticated requests cost bounded storage: the verification page
// and wrong codes (unregulated here) write nothing, and device
// authorization requests from one address stop at a limit, refused ones
// writing nothing either.
func TestDeviceRequestsAreBounded(t *testing.T) {
	e, ws := newWatchedEnv(t)
	addDeviceClients(t, e)
	b := e.browser()
	before := ws.writes.Load()
	_, page := b.get(e.issuer + "/device?user_code=BCDF-GHJK")
	csrf := loginForm(page).Get("csrf")
	for range 20 {
		if resp, _ := b.post(e.issuer+"/device", url.Values{"csrf": {csrf}, "user_code": {"BCDF-GHJK"}}); resp.StatusCode != 400 {
			t.Fatalf("wrong code: %d", resp.StatusCode)
		}
	}
	if n := ws.writes.Load() - before; n != 0 {
		t.Fatalf("the verification page and 20 wrong codes made %d writes", n)
	}
	for i := range 60 {
		if resp, m := e.postForm("/device_authorization", url.Values{"client_id": {"tv"}}, "", ""); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, m)
		}
	}
	before = ws.writes.Load()
	for range 20 {
		resp, m := e.postForm("/device_authorization", url.Values{"client_id": {"tv"}}, "", "")
		if resp.StatusCode != 429 || str(m, "error") != "slow_down" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("over the limit: %d %v", resp.StatusCode, m)
		}
	}
	if n := ws.writes.Load() - before; n != 0 {
		t.Fatalf("20 refused requests made %d writes", n)
	}
	e.clock.Advance(10 * time.Minute)
	if resp, m := e.postForm("/device_authorization", url.Values{"client_id": {"tv"}}, "", ""); resp.StatusCode != 200 {
		t.Fatalf("after the window: %d %v", resp.StatusCode, m)
	}

	// The store away: clear errors, no crash.
	ws.down.Store(true)
	if resp, m := e.postForm("/device_authorization", url.Values{"client_id": {"tv"}}, "", ""); resp.StatusCode != 500 || str(m, "error") != "server_error" {
		t.Errorf("store down, device authorization: %d %v", resp.StatusCode, m)
	}
	if resp, _ := b.post(e.issuer+"/device", url.Values{"csrf": {csrf}, "user_code": {"BCDF-GHJK"}}); resp.StatusCode != 500 {
		t.Errorf("store down, verification page: %d", resp.StatusCode)
	}
}

// otherFirst is tok with its first character changed (to another one
// whatever it was).
func otherFirst(tok string) string {
	if strings.HasPrefix(tok, "x") {
		return "y" + tok[1:]
	}
	return "x" + tok[1:]
}
