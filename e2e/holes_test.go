package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The holes of "No way around a level", tried from outside against a
// real Caddy: a file_server behind the gate, spoofed Host headers, an
// OIDC client tampering with its own authorization request, a site's
// sign-out link and its upstream hook.

const holesCaddyfile = `{
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
			totp {
				levels 3
				after password
			}
		}
		client app {
			first_party
			secret app-secret
			redirect_uri http://rp.localhost/callback
		}
	}
}

%[1]s {
	gatehouse_idp
}

# A file server behind the gate: what path tricks would reach.
%[2]s {
	gatehouse_gate {
		bypass /public/*
	}
	route /admin/* {
		gatehouse_gate {
			acr 2
		}
	}
	root * %[4]s
	file_server
}

# An app whose upstream shows what it was told, with a logout hook.
%[3]s {
	gatehouse_gate {
		header assertion X-Gatehouse-Assertion
		upstream_logout %[5]s/hook
	}
	route /admin/* {
		gatehouse_gate {
			acr 2
		}
	}
	reverse_proxy %[6]s
}
`

type holesSetup struct {
	*gateSetup
	files string // origin of the file server
	rc    *receiver
}

const (
	privateSecret = "PRIVATE-SECRET-CONTENT"
	adminSecret   = "ADMIN-SECRET-CONTENT"
)

func newHolesSetup(t *testing.T) *holesSetup {
	root := t.TempDir()
	for path, content := range map[string]string{"public/ok.txt": "public content", "private/secret.txt": privateSecret,
		"admin/secret.txt": adminSecret, "index.html": "index"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755)
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up := echoUpstream(t)
	s := &gateSetup{idpSetup: &idpSetup{authPort: freePort(t)}}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.app = fmt.Sprintf("http://app.localhost:%d", freePort(t))
	files := fmt.Sprintf("http://files.localhost:%d", freePort(t))
	rc := newReceiver(t, s.issuer)
	s.caddy = startCaddy(t, fmt.Sprintf(holesCaddyfile, s.issuer, files, s.app, root, rc.srv.URL, strings.TrimPrefix(up.URL, "http://")))
	s.addUser(t, "alice", "correct horse battery")
	return &holesSetup{gateSetup: s, files: files, rc: rc}
}

// rawGet sends target exactly as written (no client-side cleaning or
// escaping) to origin's port, with the given Host and cookies.
func rawGet(t *testing.T, origin, host, target string, cookies ...*http.Cookie) (int, string) {
	t.Helper()
	u, _ := url.Parse(origin)
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+u.Port(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var ck []string
	for _, c := range cookies {
		ck = append(ck, c.Name+"="+c.Value)
	}
	req := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/html\r\nConnection: close\r\n"
	if len(ck) > 0 {
		req += "Cookie: " + strings.Join(ck, "; ") + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return resp.StatusCode, readAll(resp)
}

// Hole 1: path tricks do not get past `bypass` to a file_server, nor past
// a route gate to its files under a weaker gate.
func TestHoleBypassAndRouteSpellingsWithFileServer(t *testing.T) {
	s := newHolesSetup(t)
	host := strings.TrimPrefix(s.files, "http://")
	if st, body := rawGet(t, s.files, host, "/public/ok.txt"); st != 200 || body != "public content" {
		t.Fatalf("bypassed file: %d %q", st, body)
	}
	if st, _ := rawGet(t, s.files, host, "/private/secret.txt"); st != http.StatusFound {
		t.Fatalf("protected file without a session: %d", st)
	}
	for _, target := range []string{
		"/public/../private/secret.txt", "/public/%2e%2e/private/secret.txt", "/public/%2E%2E/private/secret.txt",
		"/public/..%2fprivate%2fsecret.txt", "/public//../private/secret.txt", "/public/.%2e/private/secret.txt",
		"/public/%252e%252e/private/secret.txt", "/public/..\\private\\secret.txt", "/public/..%5cprivate%5csecret.txt",
		"/public;x/../private/secret.txt", "/public/./../private/secret.txt", "/./private/secret.txt",
		"/public/..;/private/secret.txt", "/public/%2e%2e%2fprivate/secret.txt", "/private/./secret.txt", "//evil.example/x",
	} {
		st, body := rawGet(t, s.files, host, target)
		if strings.Contains(body, privateSecret) {
			t.Errorf("%s served the private file without a session", target)
		} else if st != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", target, st)
		}
	}

	// Signed in at level 1, the admin files (level 2) stay out of reach
	// under every other spelling of /admin/.
	b := newBrowser(t)
	if resp, page, _ := s.visit(t, b, s.files+"/private/secret.txt", nil); !strings.Contains(page, privateSecret) {
		t.Fatalf("level 1 sign-in: %d %s", resp.StatusCode, page)
	}
	gc := b.cookie(s.files, "gatehouse-gate")
	for _, target := range []string{"/admin/secret.txt", "/admin;x/secret.txt", "/admin./secret.txt", "/ADMIN/secret.txt",
		"/%61dmin/secret.txt", "/admin%2fsecret.txt", "/admin%2Fsecret.txt", "//admin/secret.txt", "/public/../admin/secret.txt",
		"/Admin/secret.txt", "/admin/./secret.txt"} {
		st, body := rawGet(t, s.files, host, target, gc)
		if strings.Contains(body, adminSecret) {
			t.Errorf("%s served a level-2 file to a level-1 session (%d)", target, st)
		}
	}
}

// Hole 2: a spoofed Host port registers nothing and is refused.
func TestHoleSpoofedHostPort(t *testing.T) {
	s := newHolesSetup(t)
	name := strings.Split(strings.TrimPrefix(s.app, "http://"), ":")[0]
	for i := range 50 {
		for _, host := range []string{name + ":4444", name, fmt.Sprintf("%s:%d", name, 10000+i)} {
			if st, _ := rawGet(t, s.app, host, "/.gatehouse/login?return=/"); st != http.StatusMisdirectedRequest {
				t.Fatalf("Host %s: status %d, want 421", host, st)
			}
		}
	}
	// Another name does not even reach the gate (Caddy matches the site
	// by name): no redirect, no registration.
	if st, _ := rawGet(t, s.app, "evil.localhost:"+strings.Split(s.app, ":")[2], "/.gatehouse/login?return=/"); st == http.StatusFound {
		t.Fatal("another host name was sent to the provider")
	}
	out, err := s.caddy.cli("", "client", "list")
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "4444") || strings.Contains(line, "evil") || strings.Contains(line, ":100") {
			t.Fatalf("a spoofed Host reached the client list: %s", line)
		}
	}
	if !strings.Contains(out, s.app+"/.gatehouse/callback") || !strings.Contains(out, s.files+"/.gatehouse/callback") {
		t.Fatalf("configured callbacks missing from the gates' client:\n%s", out)
	}
}

// oidcRP is a confidential client "app" driven by x/oauth2 and go-oidc.
func (s *holesSetup) rp(t *testing.T) (*oauth2.Config, *oidc.IDTokenVerifier, context.Context) {
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "app", ClientSecret: "app-secret", Endpoint: p.Endpoint(),
		RedirectURL: "http://rp.localhost/callback", Scopes: []string{oidc.ScopeOpenID}}
	return conf, p.Verifier(&oidc.Config{ClientID: "app"}), ctx
}

type idClaims struct {
	ACR       string   `json:"acr"`
	ACRLevels []string `json:"acr_levels"`
	AMR       []string `json:"amr"`
	AuthTime  int64    `json:"auth_time"`
	SID       string   `json:"sid"`
}

// signIn runs one authorization in b, answering each page from answers
// (the password for password pages, a TOTP code function for code pages).
func (s *holesSetup) signIn(t *testing.T, b *browser, extra url.Values, answer func(page string) url.Values) (idClaims, *oauth2.Token) {
	t.Helper()
	conf, verifier, ctx := s.rp(t)
	v := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v)}
	for k := range extra {
		opts = append(opts, oauth2.SetAuthURLParam(k, extra.Get(k)))
	}
	b.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "rp.localhost" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	defer func() { b.client.CheckRedirect = nil }()
	resp, page := b.get(conf.AuthCodeURL("st", opts...))
	for i := 0; resp.StatusCode == http.StatusOK && i < 5; i++ {
		resp, page = b.submitForm(resp.Request.URL.String(), page, answer(page))
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Fatalf("authorization %v ended at %d %s:\n%s", extra, resp.StatusCode, resp.Header.Get("Location"), page)
	}
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := verifier.Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c idClaims
	idt.Claims(&c)
	return c, tok
}

func passwordAnswer(page string) url.Values {
	return url.Values{"username": {"alice"}, "password": {"correct horse battery"}}
}

// Holes 3, 4 and 5 with a standard OIDC client: acr_values cannot skip
// an enrolled factor, tokens describe the current authentication only,
// and max_age=0 completes with a fresh auth_time.
func TestHoleRequestParametersCannotLowerALogin(t *testing.T) {
	s := newHolesSetup(t)
	b := newBrowser(t)
	// Level 2 (password, then the second password): acr 2, levels 1 2.
	c, _ := s.signIn(t, b, url.Values{"acr_values": {"2"}}, passwordAnswer)
	if c.ACR != "2" || !slices.Equal(c.ACRLevels, []string{"1", "2"}) {
		t.Fatalf("level 2 sign-in: %+v", c)
	}
	// Hole 4: prompt=login with acr_values=1 passes the password only;
	// the token must not claim the second factor any more.
	time.Sleep(1100 * time.Millisecond)
	c2, _ := s.signIn(t, b, url.Values{"acr_values": {"1"}, "prompt": {"login"}}, passwordAnswer)
	if c2.ACR != "1" || !slices.Equal(c2.ACRLevels, []string{"1"}) || !slices.Equal(c2.AMR, []string{"pwd"}) || c2.AuthTime <= c.AuthTime {
		t.Fatalf("after prompt=login&acr_values=1: %+v (before %+v)", c2, c)
	}
	// Hole 5: max_age=0 re-authenticates and completes.
	time.Sleep(1100 * time.Millisecond)
	c3, _ := s.signIn(t, b, url.Values{"max_age": {"0"}}, passwordAnswer)
	if c3.AuthTime <= c2.AuthTime {
		t.Fatalf("max_age=0: auth_time %d not after %d", c3.AuthTime, c2.AuthTime)
	}

	// Hole 3: enrol TOTP (level 3), then a fresh browser asking only for
	// level 1 must pass TOTP too.
	var secret string
	code := func(page string) url.Values {
		if m := totpSecretRE.FindStringSubmatch(page); m != nil {
			secret = m[1]
		}
		if strings.Contains(page, `name="password"`) {
			return passwordAnswer(page)
		}
		return url.Values{"code": {totpCode(t, secret, time.Now())}}
	}
	s.signIn(t, newBrowser(t), url.Values{"acr_values": {"3"}}, code)
	if secret == "" {
		t.Fatal("no TOTP enrolment seen")
	}
	time.Sleep(time.Until(time.Now().Truncate(30 * time.Second).Add(30 * time.Second))) // a new TOTP step
	asked := false
	c4, _ := s.signIn(t, newBrowser(t), url.Values{"acr_values": {"1"}}, func(page string) url.Values {
		if strings.Contains(page, "Two-step verification") {
			asked = true
		}
		return code(page)
	})
	if !asked || !slices.Contains(c4.AMR, "otp") {
		t.Fatalf("acr_values=1 skipped the enrolled TOTP: asked=%v claims %+v", asked, c4)
	}
}

// Holes 6, 7 and 9: the route gate keeps the site gate's assertion; a
// cross-site request to the site's sign-out asks first; the site's own
// sign-out ends everything and its upstream hook hears of it; the gate's
// assertion is not an id_token_hint.
func TestHoleGateLogout(t *testing.T) {
	s := newHolesSetup(t)
	b := newBrowser(t)
	_, _, echo := s.visit(t, b, s.app+"/hello", nil)
	if echo == nil || echo["Remote-User"] != "alice" || echo["X-Gatehouse-Assertion"] == "" {
		t.Fatalf("site gate: %v", echo)
	}
	assertion := echo["X-Gatehouse-Assertion"]
	// Hole 7: the /admin/ route gate sends the assertion too.
	_, _, echo = s.visit(t, b, s.app+"/admin/panel", nil)
	if echo == nil || echo["Remote-Acr"] != "2" || echo["X-Gatehouse-Assertion"] == "" {
		t.Fatalf("route gate dropped the site gate's assertion: %v", echo)
	}
	if c := assertionClaims(t, echo["X-Gatehouse-Assertion"]); c["acr"] != "2" || c["aud"] != s.app {
		t.Fatalf("route gate's assertion: %v", c)
	}

	// Hole 9: the gate's assertion as id_token_hint signs nobody out.
	nr, _ := http.NewRequest(http.MethodGet, s.issuer+"/logout?id_token_hint="+url.QueryEscape(assertion), nil)
	resp, err := b.client.Do(nr)
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(resp); strings.Contains(page, "You are signed out") || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("assertion accepted as id_token_hint: %d", resp.StatusCode)
	}
	// Hole 9: a cross-site navigation to the sign-out link asks first.
	req, _ := http.NewRequest(http.MethodGet, s.app+"/.gatehouse/logout", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(resp); !strings.Contains(page, "Do you want to sign out") {
		t.Fatalf("cross-site sign-out did not ask: %d\n%s", resp.StatusCode, page)
	}
	if _, _, echo := s.visit(t, b, s.app+"/hello", nil); echo == nil || echo["Remote-User"] != "alice" {
		t.Fatal("a cross-site GET signed the user out")
	}
	// The site's own sign-out link ends it, and the site's upstream hook
	// hears of it (hole 6).
	req, _ = http.NewRequest(http.MethodGet, s.app+"/.gatehouse/logout", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	resp, err = b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	got := s.rc.waitFor("/hook", 1)
	if got[0]["aud"] != s.app || got[0]["sub"] == nil {
		t.Fatalf("hook token %v", got[0])
	}
	bb := newBrowser(t)
	bb.client.Jar = b.client.Jar
	bb.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if r, _ := bb.get(s.app + "/hello"); r.StatusCode != http.StatusFound {
		t.Fatalf("still signed in after the site's sign-out: %d", r.StatusCode)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(s.rc.got("/hook")); n != 1 {
		t.Fatalf("hook got %d tokens, want exactly 1", n)
	}
}

// Hole 10: an access token stops working when its session ends.
func TestHoleTokensDieWithTheSession(t *testing.T) {
	s := newHolesSetup(t)
	b := newBrowser(t)
	_, tok := s.signIn(t, b, nil, passwordAnswer)
	userinfo := func() int {
		req, _ := http.NewRequest(http.MethodGet, s.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := (&http.Client{Transport: loopbackTransport()}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := userinfo(); st != 200 {
		t.Fatalf("userinfo: %d", st)
	}
	if out, err := s.caddy.cli("", "session", "revoke", "--user", "alice"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if st := userinfo(); st != http.StatusUnauthorized {
		t.Fatalf("userinfo after the session ended: %d", st)
	}
}
