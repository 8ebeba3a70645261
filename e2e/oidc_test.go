package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// idpSetup is a Caddy with an IdP on auth.localhost and a confidential
// client "app" whose callback is served on app.localhost.
type idpSetup struct {
	caddy      *caddy
	issuer     string
	appHost    string
	redirect   string
	authPort   int
	appPort    int
	extraSites string
}

const idpCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		client app {
			first_party
			name "Test App"
			secret app-secret/with+special&chars
			redirect_uri %[2]s
		}
		%[4]s
	}
}

%[1]s {
	gatehouse_idp
}

http://%[3]s {
	respond /callback "callback reached" 200
}
`

func newIDP(t *testing.T, extraGlobal string) *idpSetup {
	s := &idpSetup{authPort: freePort(t), appPort: freePort(t)}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.appHost = fmt.Sprintf("app.localhost:%d", s.appPort)
	s.redirect = "http://" + s.appHost + "/callback"
	s.caddy = startCaddy(t, s.caddyfile(extraGlobal))
	return s
}

func (s *idpSetup) caddyfile(extraGlobal string) string {
	return fmt.Sprintf(idpCaddyfile, s.issuer, s.redirect, s.appHost, extraGlobal)
}

func (s *idpSetup) addUser(t *testing.T, name, password string) {
	t.Helper()
	out, err := s.caddy.cli(password+"\n", "user", "add", name, "--email", name+"@example.com", "--email-verified",
		"--name", "Alice Example", "--group", "staff", "--password-stdin")
	if err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
}

// oidcClient is the relying party: go-oidc discovery and x/oauth2.
type oidcClient struct {
	ctx      context.Context
	provider *oidc.Provider
	conf     oauth2.Config
}

func (s *idpSetup) client(t *testing.T) *oidcClient {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &oidcClient{ctx: ctx, provider: p, conf: oauth2.Config{
		ClientID: "app", ClientSecret: "app-secret/with+special&chars",
		Endpoint: p.Endpoint(), RedirectURL: s.redirect,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
	}}
}

// consentItem is a checkbox of the consent page.
var consentItem = regexp.MustCompile(`<input type="checkbox" name="grant" value="([^"]+)"`)

// authorize runs the authorization request in b; when the login page
// shows, it signs in with username/password, and when the consent page
// shows, it allows everything. It returns the callback's query.
func (s *idpSetup) authorize(t *testing.T, b *browser, authURL, username, password string) url.Values {
	t.Helper()
	resp, page := b.get(authURL)
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="password"`) {
		if username == "" {
			t.Fatalf("login page shown but no credentials given")
		}
		resp, page = b.submitLogin(resp.Request.URL.String(), page, username, password)
	}
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `id="consent-allow"`) {
		// A third-party client: the person allows all it asks for.
		grant := url.Values{"action": {"allow"}}
		for _, m := range consentItem.FindAllStringSubmatch(page, -1) {
			grant.Add("grant", html.UnescapeString(m[1]))
		}
		resp, page = b.submitForm(resp.Request.URL.String(), page, grant)
	}
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("expected a redirect to the client, got %d at %s:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != s.appHost || loc.Path != "/callback" {
		t.Fatalf("redirected to %q, want the client's callback", resp.Header.Get("Location"))
	}
	return loc.Query()
}

func TestCodeFlowWithStandardClient(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	rp := s.client(t)
	b := newBrowser(t, s.appHost)

	verifier := oauth2.GenerateVerifier()
	authURL := rp.conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-456"))
	q := s.authorize(t, b, authURL, "alice", "correct horse battery")
	if q.Get("state") != "state-123" || q.Get("iss") != s.issuer || q.Get("code") == "" {
		t.Fatalf("callback query %v", q)
	}

	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(rp.ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	var claims struct {
		Nonce, Acr, Sid, Email, Name string
		Amr                          []string
		AuthTime                     int64  `json:"auth_time"`
		Username                     string `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != "nonce-456" || claims.Acr != "1" || !slices.Equal(claims.Amr, []string{"pwd"}) || claims.Sid == "" ||
		claims.AuthTime == 0 || claims.Email != "alice@example.com" || claims.Username != "alice" {
		t.Fatalf("ID token claims %+v", claims)
	}

	ui, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != idt.Subject || ui.Email != "alice@example.com" || !ui.EmailVerified {
		t.Fatalf("userinfo %+v", ui)
	}

	// The same code again: refused, and the first access token dies.
	if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil ||
		!strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("second exchange: %v", err)
	}
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("access token still valid after code replay")
	}

	// Single sign-on: a second authorization needs no login page.
	verifier2 := oauth2.GenerateVerifier()
	q2 := s.authorize(t, b, rp.conf.AuthCodeURL("state-2", oauth2.S256ChallengeOption(verifier2)), "", "")
	tok2, err := rp.conf.Exchange(rp.ctx, q2.Get("code"), oauth2.VerifierOption(verifier2))
	if err != nil {
		t.Fatalf("second login exchange: %v", err)
	}
	idt2, err := rp.provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(rp.ctx, tok2.Extra("id_token").(string))
	if err != nil || idt2.Subject != idt.Subject {
		t.Fatalf("SSO ID token: %v", err)
	}
	// x/oauth2 refreshes an expired token by itself; the refresh token
	// rotates and the new ID token verifies with go-oidc.
	if tok2.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	expired := *tok2
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := rp.conf.TokenSource(rp.ctx, &expired).Token()
	if err != nil || fresh.AccessToken == tok2.AccessToken || fresh.RefreshToken == tok2.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	idt3, err := rp.provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(rp.ctx, fresh.Extra("id_token").(string))
	if err != nil || idt3.Subject != idt.Subject {
		t.Fatalf("refreshed ID token: %v", err)
	}
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(fresh)); err != nil {
		t.Fatalf("userinfo with the refreshed token: %v", err)
	}
	// The first refresh token again: refused, and the family is revoked.
	if _, err := rp.conf.TokenSource(rp.ctx, &expired).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("reused refresh token: %v", err)
	}
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(fresh)); err == nil {
		t.Fatal("access token of a revoked refresh family still works")
	}

	// A wrong password and an unknown user read the same.
	b2 := newBrowser(t, s.appHost)
	resp, page := b2.get(authURL)
	_, wrong := b2.submitLogin(resp.Request.URL.String(), page, "alice", "nope")
	resp, page = b2.get(authURL)
	_, unknown := b2.submitLogin(resp.Request.URL.String(), page, "mallory", "nope")
	if !strings.Contains(wrong, "Wrong username or password") || !strings.Contains(unknown, "Wrong username or password") {
		t.Fatalf("login failure pages differ or lack the message")
	}
}

func TestSessionsAndKeysSurviveReload(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	rp := s.client(t)
	b := newBrowser(t, s.appHost)
	v := oauth2.GenerateVerifier()
	s.authorize(t, b, rp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "alice", "correct horse battery")
	kids := jwksKids(t, s.issuer)

	s.caddy.reload(s.caddyfile(`client other {
			secret other-secret
			redirect_uri http://other.localhost/cb
		}`))
	if got := jwksKids(t, s.issuer); !slices.Equal(got, kids) {
		t.Fatalf("keys changed on reload: %v -> %v", kids, got)
	}
	v2 := oauth2.GenerateVerifier()
	q := s.authorize(t, b, rp.conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(v2)), "", "")
	if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(v2)); err != nil {
		t.Fatalf("exchange after reload: %v", err)
	}
	out, err := s.caddy.cli("", "client", "list")
	if err != nil || !strings.Contains(out, "other") || !strings.Contains(out, "app") {
		t.Fatalf("client list after reload: %v\n%s", err, out)
	}
}

func TestAdminCLI(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "first password")
	out, err := s.caddy.cli("", "user", "list")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "active") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("another good passphrase\n", "user", "add", "alice", "--password-stdin"); err == nil || !strings.Contains(out, "already in use") {
		t.Fatalf("duplicate user add: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("second password\n", "user", "passwd", "alice", "--password-stdin"); err != nil {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("pw\n", "user", "passwd", "nobody", "--password-stdin"); err == nil || !strings.Contains(out, "no user") {
		t.Fatalf("passwd for unknown user: %v\n%s", err, out)
	}

	rp := s.client(t)
	b := newBrowser(t, s.appHost)
	v := oauth2.GenerateVerifier()
	authURL := rp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))
	resp, page := b.get(authURL)
	if _, body := b.submitLogin(resp.Request.URL.String(), page, "alice", "first password"); !strings.Contains(body, "Wrong username or password") {
		t.Fatal("old password still works after passwd")
	}

	if out, err := s.caddy.cli("", "user", "disable", "alice"); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %v\n%s", err, out)
	}
	resp, page = b.get(authURL)
	if _, body := b.submitLogin(resp.Request.URL.String(), page, "alice", "second password"); !strings.Contains(body, "Wrong username or password") {
		t.Fatal("disabled user signed in")
	}
	if out, err := s.caddy.cli("", "user", "disable", "alice", "--enable"); err != nil {
		t.Fatalf("enable: %v\n%s", err, out)
	}
	s.authorize(t, b, authURL, "alice", "second password")

	// A client added at run time works with its printed secret.
	out, err = s.caddy.cli("", "client", "add", "cli-app", "--redirect-uri", s.redirect, "--name", "CLI App", "--first-party")
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	var secret string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "client_secret: "); ok {
			secret = v
		}
	}
	if secret == "" {
		t.Fatalf("no secret printed:\n%s", out)
	}
	rp.conf.ClientID, rp.conf.ClientSecret = "cli-app", secret
	v2 := oauth2.GenerateVerifier()
	q := s.authorize(t, b, rp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v2)), "", "")
	if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(v2)); err != nil {
		t.Fatalf("exchange for CLI client: %v", err)
	}

	// Key rotation: the old key stays published, new tokens use the new one.
	before := jwksKids(t, s.issuer)
	out, err = s.caddy.cli("", "keys", "rotate")
	if err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	newKid := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "new active signing key:"))
	after := jwksKids(t, s.issuer)
	if len(after) != len(before)+1 || !slices.Contains(after, newKid) || !slices.Contains(after, before[0]) {
		t.Fatalf("JWKS after rotation %v (before %v, new %q)", after, before, newKid)
	}
	v3 := oauth2.GenerateVerifier()
	q = s.authorize(t, b, rp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v3)), "", "")
	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(v3))
	if err != nil {
		t.Fatal(err)
	}
	if kid := headerKid(t, tok.Extra("id_token").(string)); kid != newKid {
		t.Fatalf("ID token signed with %q, want new key %q", kid, newKid)
	}
	if _, err := rp.provider.Verifier(&oidc.Config{ClientID: "cli-app"}).Verify(rp.ctx, tok.Extra("id_token").(string)); err != nil {
		t.Fatalf("verify after rotation: %v", err)
	}

	// With Caddy stopped, the CLI says so.
	s.caddy.stop()
	out, err = s.caddy.cli("", "user", "list")
	if err == nil || !strings.Contains(out, "caddy is not running") {
		t.Fatalf("CLI with Caddy stopped: %v\n%s", err, out)
	}
}

func jwksKids(t *testing.T, issuer string) []string {
	t.Helper()
	c := &http.Client{Transport: loopbackTransport()}
	resp, err := c.Get(issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return kids
}

func headerKid(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64URLDecode(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}
