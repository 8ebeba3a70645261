package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// echoUpstream answers with the request headers it received, as JSON.
func echoUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"_path": r.URL.Path, "_host": r.Host}
		for k, v := range r.Header {
			h[k] = strings.Join(v, "|")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type gateSetup struct {
	*idpSetup
	app, wiki, fwd string // origins
	upstream       string
	fwdGatePort    int // the forward-auth gate's own site
}

const gateCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		chain {
			password {
				levels 1
			}
			second {
				kind password
				levels 2
				after password
				show_only_when_needed
			}
		}
	}
}

%[1]s {
	gatehouse_idp
}

%[2]s {
	gatehouse_gate {
		bypass /public/*
		header assertion X-Gatehouse-Assertion
		cache_ttl 1s
	}
	route /admin/* {
		gatehouse_gate {
			acr 2
			cache_ttl 1s
		}
	}
	route /ops/* {
		gatehouse_gate {
			allow group ops
		}
	}
	route /staff/* {
		gatehouse_gate {
			allow group staff
			cache_ttl 1s
		}
	}
	reverse_proxy %[4]s {
		header_up X-Ph-User {http.auth.user.id}
		header_up X-Ph-Sub {http.auth.user.sub}
		header_up X-Ph-Email {http.auth.user.email}
		header_up X-Ph-Name {http.auth.user.name}
		header_up X-Ph-Groups {http.auth.user.groups}
		header_up X-Ph-Acr {http.auth.user.acr}
	}
}

%[3]s {
	gatehouse_gate {
		cache_ttl 1s
	}
	reverse_proxy %[4]s
}

# Caddy's own forward_auth in front of a site, asking a Gatehouse gate.
%[5]s {
	handle /.gatehouse/* {
		reverse_proxy 127.0.0.1:%[6]d
	}
	handle {
		forward_auth 127.0.0.1:%[6]d {
			uri /.gatehouse/verify?acr=1
			copy_headers Remote-User Remote-Email Remote-Groups Remote-Acr
		}
		reverse_proxy %[4]s
	}
}

http://:%[6]d {
	gatehouse_gate {
		forward_auth
		hosts %[5]s
	}
}
`

func newGateSetup(t *testing.T) *gateSetup {
	up := echoUpstream(t)
	s := &gateSetup{idpSetup: &idpSetup{authPort: freePort(t), appPort: freePort(t)}, upstream: strings.TrimPrefix(up.URL, "http://")}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.app = fmt.Sprintf("http://app.localhost:%d", s.appPort)
	s.wiki = fmt.Sprintf("http://wiki.localhost:%d", freePort(t))
	s.fwd = fmt.Sprintf("http://fwd.localhost:%d", freePort(t))
	s.appHost = "never-stop" // the browsers below follow every redirect
	s.fwdGatePort = freePort(t)
	s.caddy = startCaddy(t, fmt.Sprintf(gateCaddyfile, s.issuer, s.app, s.wiki, s.upstream, s.fwd, s.fwdGatePort))
	s.addUser(t, "alice", "correct horse battery")
	return s
}

// visit loads u in b like a person would (Accept: text/html), signing in
// with password when a login page shows. It returns the final response
// and the upstream's echo (nil when the page is not from the upstream).
func (s *gateSetup) visit(t *testing.T, b *browser, u string, headers map[string]string) (*http.Response, string, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	for i := 0; i < 3 && resp.StatusCode == http.StatusOK && strings.Contains(body, `name="password"`); i++ {
		resp, body = b.submitLogin(resp.Request.URL.String(), body, "alice", "correct horse battery")
	}
	var echo map[string]string
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal([]byte(body), &echo)
	}
	return resp, body, echo
}

func TestGateSingleSignOnHeadersAndStepUp(t *testing.T) {
	s := newGateSetup(t)
	b := newBrowser(t)

	// First visit: login once, the upstream learns who it is.
	resp, body, echo := s.visit(t, b, s.app+"/hello?x=1", map[string]string{
		"Remote-User": "mallory", "Remote_User": "mallory", "REMOTE-GROUPS": "admins", "X-Gatehouse-Assertion": "forged",
	})
	if echo == nil {
		t.Fatalf("did not reach the upstream: %d %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if echo["_path"] != "/hello" || echo["Remote-User"] != "alice" || echo["Remote-Email"] != "alice@example.com" ||
		echo["Remote-Groups"] != "staff" || echo["Remote-Acr"] != "1" || echo["Remote-Name"] != "Alice Example" {
		t.Fatalf("upstream saw %v", echo)
	}
	// Caddy placeholders carry the same identity to any directive.
	if echo["X-Ph-User"] != "alice" || echo["X-Ph-Email"] != "alice@example.com" || echo["X-Ph-Name"] != "Alice Example" ||
		echo["X-Ph-Groups"] != "staff" || echo["X-Ph-Acr"] != "1" || echo["X-Ph-Sub"] == "" {
		t.Fatalf("placeholders: %v", echo)
	}
	if _, spoof := echo["Remote_user"]; spoof {
		t.Fatalf("underscore variant reached the upstream: %v", echo)
	}
	s.checkAssertion(t, echo["X-Gatehouse-Assertion"])

	// Second host: no login page, thanks to the IdP's SSO session.
	resp, body, echo = s.visit(t, b, s.wiki+"/", nil)
	if echo == nil || echo["Remote-User"] != "alice" {
		t.Fatalf("wiki: %d %s", resp.StatusCode, body)
	}

	// Step-up: the admin area needs level 2; the IdP asks only for the
	// second module and the upstream sees acr 2.
	req, _ := http.NewRequest(http.MethodGet, s.app+"/admin/panel", nil)
	req.Header.Set("Accept", "text/html")
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r1, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r1.Body.Close()
	loc, _ := url.Parse(r1.Header.Get("Location"))
	if r1.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), s.issuer+"/authorize") ||
		loc.Query().Get("acr_values") != "2" || loc.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("step-up redirect %d %s", r1.StatusCode, loc)
	}
	b.client.CheckRedirect = nil
	resp, body, echo = s.visit(t, b, s.app+"/admin/panel", nil)
	if echo == nil || echo["Remote-Acr"] != "2" || echo["_path"] != "/admin/panel" {
		t.Fatalf("after step-up: %d %s", resp.StatusCode, body)
	}
	// The rest of the site keeps working with the stronger session.
	if _, _, echo = s.visit(t, b, s.app+"/", nil); echo["Remote-Acr"] != "2" {
		t.Fatalf("site after step-up: %v", echo)
	}

	// Group policy: alice is not in ops.
	if resp, _, _ := s.visit(t, b, s.app+"/ops/x", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ops for non-member: %d", resp.StatusCode)
	}

	// Removed from an allowed group: refused once the cache bound passed.
	if _, _, echo := s.visit(t, b, s.app+"/staff/x", nil); echo == nil {
		t.Fatal("staff member refused")
	}
	if out, err := s.caddy.cli("", "user", "groups", "alice", "ops"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	waitStatus(t, func() int { r, _, _ := s.visit(t, b, s.app+"/staff/x", nil); return r.StatusCode }, http.StatusForbidden)
	if _, _, echo := s.visit(t, b, s.app+"/ops/x", nil); echo == nil || echo["Remote-Groups"] != "ops" {
		t.Fatalf("new group not seen: %v", echo)
	}

	// Bypass path: no login, and still no spoofed identity.
	nb := newBrowser(t)
	_, _, echo = s.visit(t, nb, s.app+"/public/logo", map[string]string{"Remote-User": "mallory"})
	if echo == nil || echo["Remote-User"] != "" {
		t.Fatalf("bypass: %v", echo)
	}

	// API calls without a session: 401, not a redirect.
	req, _ = http.NewRequest(http.MethodGet, s.app+"/api/data", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	r2, err := nb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusUnauthorized || !strings.Contains(r2.Header.Get("WWW-Authenticate"), "login_url=") {
		t.Fatalf("XHR: %d %q", r2.StatusCode, r2.Header.Get("WWW-Authenticate"))
	}

	// Gate logout drops the gate session and signs out at the IdP too
	// (no confirmation: the gate sends its ID token as the hint); back on
	// the site, the browser must sign in again.
	// The site's own sign-out link: a same-origin navigation.
	lreq, _ := http.NewRequest(http.MethodGet, s.app+"/.gatehouse/logout", nil)
	lreq.Header.Set("Accept", "text/html")
	lreq.Header.Set("Sec-Fetch-Site", "same-origin")
	lreq.Header.Set("Sec-Fetch-Mode", "navigate")
	lreq.Header.Set("Sec-Fetch-Dest", "document")
	lresp, err := b.client.Do(lreq)
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(lresp); !strings.Contains(page, `name="password"`) {
		t.Fatalf("after gate logout, no login page:\n%s", page)
	}
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ = http.NewRequest(http.MethodGet, s.app+"/", nil)
	req.Header.Set("Accept", "text/html")
	r3, _ := b.client.Do(req)
	r3.Body.Close()
	if r3.StatusCode != http.StatusFound {
		t.Fatalf("after gate logout: %d", r3.StatusCode)
	}
	b.client.CheckRedirect = nil

	// A disabled user is refused.
	_, _, echo = s.visit(t, b, s.wiki+"/", nil)
	if echo["Remote-User"] != "alice" {
		t.Fatal("wiki before disable")
	}
	if out, err := s.caddy.cli("", "user", "disable", "alice"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// Disabling ends the user's sessions everywhere: the gate sends the
	// browser to sign in again, where a disabled account cannot (401).
	waitStatus(t, func() int { r, _, _ := s.visit(t, b, s.wiki+"/", nil); return r.StatusCode }, http.StatusUnauthorized)
}

// waitStatus polls get until it returns want (at most 10s).
func waitStatus(t *testing.T, get func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d, want %d", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *gateSetup) checkAssertion(t *testing.T, raw string) {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("assertion %q: %v", raw, err)
	}
	c := &http.Client{Transport: loopbackTransport()}
	resp, err := c.Get(s.issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		t.Fatal("assertion key not in JWKS")
	}
	var claims jwt.Claims
	var extra struct {
		Username string `json:"preferred_username"`
		ACR      string `json:"acr"`
	}
	if err := tok.Claims(keys[0].Key, &claims, &extra); err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	if err := claims.Validate(jwt.Expected{Issuer: s.issuer, AnyAudience: jwt.Audience{s.app}, Time: time.Now()}); err != nil {
		t.Fatalf("assertion claims: %v", err)
	}
	if extra.Username != "alice" || extra.ACR != "1" {
		t.Fatalf("assertion %+v", extra)
	}
}

func TestGateBadInput(t *testing.T) {
	s := newGateSetup(t)
	b := newBrowser(t)
	if _, _, echo := s.visit(t, b, s.app+"/", nil); echo == nil {
		t.Fatal("login failed")
	}
	gateCookie := b.cookie(s.app, "gatehouse-gate")
	noFollow := func(u string, cookies ...*http.Cookie) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "text/html")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		c := &http.Client{Transport: loopbackTransport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// The cookie works on its own host...
	if r := noFollow(s.app+"/", gateCookie); r.StatusCode != 200 {
		t.Fatalf("own cookie: %d", r.StatusCode)
	}
	// ...not on another protected host, and not when tampered with.
	if r := noFollow(s.wiki+"/", &http.Cookie{Name: gateCookie.Name, Value: gateCookie.Value}); r.StatusCode != http.StatusFound {
		t.Fatalf("cookie on another host: %d", r.StatusCode)
	}
	tampered := &http.Cookie{Name: gateCookie.Name, Value: gateCookie.Value[:len(gateCookie.Value)-2] + "xx"}
	if r := noFollow(s.app+"/", tampered); r.StatusCode != http.StatusFound {
		t.Fatalf("tampered cookie: %d", r.StatusCode)
	}

	// Open redirects through the login return address.
	for _, ret := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
		"%2F%2Fevil.example", "/%2F%2Fevil.example", "/%5Cevil.example", "http:evil.example", "/%252F%252Fevil.example", "javascript:alert(1)"} {
		r := noFollow(s.app + "/.gatehouse/login?return=" + url.QueryEscape(ret))
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("return=%q: status %d, Location %q", ret, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r := noFollow(s.app + "/.gatehouse/login?return=" + url.QueryEscape("/ok?a=b")); r.StatusCode != http.StatusFound {
		t.Errorf("a good return address was refused: %d", r.StatusCode)
	}

	// Callback without a pending login, and a replayed state.
	if r := noFollow(s.app + "/.gatehouse/callback?code=x&state=nope"); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback without pending login: %d", r.StatusCode)
	}
	nb := newBrowser(t)
	nb.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/.gatehouse/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, page := nb.get(s.app + "/")
	resp, _ = nb.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery")
	cb := resp.Header.Get("Location")
	if !strings.Contains(cb, "/.gatehouse/callback") {
		t.Fatalf("no callback redirect: %d %s", resp.StatusCode, cb)
	}
	// Another browser cannot use this browser's callback (state is bound).
	if r := noFollow(cb); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback in another browser: %d", r.StatusCode)
	}
	// A form POST that needed a login is not lost silently.
	pb := newBrowser(t)
	req, _ := http.NewRequest(http.MethodPost, s.app+"/form", strings.NewReader("a=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	presp, err := pb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ppage := readAll(presp)
	presp, ppage = pb.submitLogin(presp.Request.URL.String(), ppage, "alice", "correct horse battery")
	if presp.StatusCode != http.StatusOK || !strings.Contains(ppage, "submit it again") || !strings.Contains(ppage, `href="/form"`) {
		t.Fatalf("POST that needed a login: %d\n%s", presp.StatusCode, ppage)
	}

	// The other browser's try did not spend this browser's login: the
	// callback works once here, and a replay fails.
	nb.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if r, _ := nb.get(cb); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback in its own browser: %d", r.StatusCode)
	}
	if r, _ := nb.get(cb); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed callback: %d", r.StatusCode)
	}
}

func TestForwardAuthWithCaddy(t *testing.T) {
	s := newGateSetup(t)
	b := newBrowser(t)
	resp, body, echo := s.visit(t, b, s.fwd+"/page", map[string]string{"Remote-User": "mallory"})
	if echo == nil || echo["Remote-User"] != "alice" || echo["Remote-Acr"] != "1" || echo["_path"] != "/page" {
		t.Fatalf("forward auth: %d %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.fwd+"/api", nil)
	req.Header.Set("Accept", "application/json")
	r, err := newBrowser(t).client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forward auth without session: %d", r.StatusCode)
	}

	// Asked directly, as nginx auth_request would: a browser navigation
	// gets a redirect, or 401 with redirect=off; an unknown host 403; a
	// signed-in cookie 200 with an empty body and the identity headers.
	verify := func(query, host string, cookies []*http.Cookie) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/.gatehouse/verify%s", s.fwdGatePort, query), nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("X-Forwarded-Host", host)
		req.Header.Set("X-Forwarded-Uri", "/page?a=1")
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Proto", "http")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	fwdHost := strings.TrimPrefix(s.fwd, "http://")
	if r := verify("", fwdHost, nil); r.StatusCode != http.StatusFound {
		t.Fatalf("verify, navigation: %d", r.StatusCode)
	}
	if r := verify("?redirect=off", fwdHost, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("verify, redirect=off: %d", r.StatusCode)
	}
	if r := verify("", "evil.localhost", nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("verify, unknown host: %d", r.StatusCode)
	}
	fwdURL, _ := url.Parse(s.fwd)
	r = verify("?acr=1", fwdHost, b.client.Jar.Cookies(fwdURL))
	if r.StatusCode != http.StatusOK || r.ContentLength != 0 || r.Header.Get("Remote-User") != "alice" {
		t.Fatalf("verify, signed in: %d len %d user %q", r.StatusCode, r.ContentLength, r.Header.Get("Remote-User"))
	}
	if r := verify("?allow_group=ops", fwdHost, b.client.Jar.Cookies(fwdURL)); r.StatusCode != http.StatusForbidden {
		t.Fatalf("verify, group policy from the query: %d", r.StatusCode)
	}
}
