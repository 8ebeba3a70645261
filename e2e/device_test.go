package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// deviceSetup is a Caddy whose IdP has a public device client "tv"
// (device_code and refresh_token), polled every second.
type deviceSetup struct {
	caddy  *caddy
	issuer string
	rp     *oidcClient
}

const deviceCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		device_poll_interval 1s
		device_code_ttl 5m
		client tv {
			name "Living Room TV"
			public
			grant_types urn:ietf:params:oauth:grant-type:device_code refresh_token
		}
	}
}

%[1]s {
	gatehouse_idp
}
`

func newDeviceSetup(t *testing.T) *deviceSetup {
	t.Helper()
	s := &deviceSetup{issuer: fmt.Sprintf("http://auth.localhost:%d", freePort(t))}
	s.caddy = startCaddy(t, fmt.Sprintf(deviceCaddyfile, s.issuer))
	(&idpSetup{caddy: s.caddy}).addUser(t, "alice", "correct horse battery")
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := p.Endpoint()
	if ep.DeviceAuthURL != s.issuer+"/device_authorization" {
		t.Fatalf("discovery has no device_authorization_endpoint: %+v", ep)
	}
	ep.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the form
	s.rp = &oidcClient{ctx: ctx, provider: p, conf: oauth2.Config{
		ClientID: "tv", Endpoint: ep, Scopes: []string{oidc.ScopeOpenID, "profile", "offline_access"},
	}}
	return s
}

// poll runs x/oauth2's DeviceAccessToken for da in the background.
func (s *deviceSetup) poll(da *oauth2.DeviceAuthResponse) <-chan any {
	done := make(chan any, 1)
	go func() {
		ctx, cancel := context.WithTimeout(s.rp.ctx, 60*time.Second)
		defer cancel()
		tok, err := s.rp.conf.DeviceAccessToken(ctx, da)
		if err != nil {
			done <- err
			return
		}
		done <- tok
	}()
	return done
}

// checkTokens verifies what the device received: an ID token for alice,
// a refresh token, and an access token userinfo takes.
func (s *deviceSetup) checkTokens(t *testing.T, got any) {
	t.Helper()
	tok, ok := got.(*oauth2.Token)
	if !ok {
		t.Fatalf("device got no tokens: %v", got)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := s.rp.provider.Verifier(&oidc.Config{ClientID: "tv"}).Verify(s.rp.ctx, raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var c struct {
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
		SID               string `json:"sid"`
		Nonce             string `json:"nonce"`
	}
	if err := idt.Claims(&c); err != nil || c.PreferredUsername != "alice" || c.SID == "" || c.Nonce != "" {
		t.Errorf("ID token claims %+v %v", c, err)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token")
	}
	ui, err := s.rp.provider.UserInfo(s.rp.ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != idt.Subject {
		t.Errorf("userinfo: %v %v", ui, err)
	}
	// The refresh token works with the standard client too.
	src := s.rp.conf.TokenSource(s.rp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
	if next, err := src.Token(); err != nil || next.AccessToken == "" || next.AccessToken == tok.AccessToken {
		t.Errorf("refresh: %v %v", next, err)
	}
}

// TestDeviceFlowWithStandardClient: x/oauth2 as the device, a Go
// browser as the person who types the code, signs in and allows it.
func TestDeviceFlowWithStandardClient(t *testing.T) {
	s := newDeviceSetup(t)
	da, err := s.rp.conf.DeviceAuth(s.rp.ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURI != s.issuer+"/device" || da.Interval != 1 || da.UserCode == "" ||
		!strings.HasPrefix(da.VerificationURIComplete, s.issuer+"/device?user_code=") || time.Until(da.Expiry) < 4*time.Minute {
		t.Fatalf("device authorization response %+v", da)
	}
	done := s.poll(da)

	b := newBrowser(t)
	pageURL := da.VerificationURIComplete
	resp, page := b.get(pageURL)
	if resp.StatusCode != 200 || !strings.Contains(page, `value="`+da.UserCode+`"`) {
		t.Fatalf("verification page: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.submitForm(pageURL, page, url.Values{"user_code": {da.UserCode}})
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("no login after the code: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery")
	if resp.StatusCode != 200 || !strings.Contains(page, "Allow Living Room TV on your device?") || !strings.Contains(page, da.UserCode) {
		t.Fatalf("allow page: %d\n%s", resp.StatusCode, page)
	}
	select {
	case got := <-done:
		t.Fatalf("the device got an answer before the person did: %v", got)
	case <-time.After(2500 * time.Millisecond): // two polls: pending
	}
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"decision": {"allow"}})
	if resp.StatusCode != 200 || !strings.Contains(page, "Device connected") {
		t.Fatalf("after allow: %d\n%s", resp.StatusCode, page)
	}
	select {
	case got := <-done:
		s.checkTokens(t, got)
	case <-time.After(30 * time.Second):
		t.Fatal("the device got no tokens")
	}

	// Denied: the standard client reports access_denied.
	da, err = s.rp.conf.DeviceAuth(s.rp.ctx)
	if err != nil {
		t.Fatal(err)
	}
	done = s.poll(da)
	resp, page = b.get(s.issuer + "/device")
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"user_code": {strings.ToLower(da.UserCode)}})
	resp, _ = b.submitForm(resp.Request.URL.String(), page, url.Values{"decision": {"deny"}})
	if resp.StatusCode != 200 {
		t.Fatalf("deny: %d", resp.StatusCode)
	}
	select {
	case got := <-done:
		if re, ok := got.(*oauth2.RetrieveError); !ok || re.ErrorCode != "access_denied" {
			t.Fatalf("after deny the device got %v", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the device got no answer")
	}
}

// TestBrowserDeviceVerification: chromium as the person, x/oauth2 as the
// device: type the code as shown, sign in, compare the code, allow.
func TestBrowserDeviceVerification(t *testing.T) {
	s := newDeviceSetup(t)
	da, err := s.rp.conf.DeviceAuth(s.rp.ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	done := s.poll(da)
	ctx := newChromium(t)
	err = chromedp.Do(ctx,
		chromedp.Navigate(da.VerificationURI),
		chromedp.WaitVisible(chromedp.ID("f-user_code")),
		chromedp.SendKeys(chromedp.ID("f-user_code"), strings.ToLower(da.UserCode)),
		chromedp.Submit(chromedp.ID("f-user_code")),
		chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")),
		chromedp.WaitVisible(chromedp.ID("device-allow")),
	)
	if err != nil {
		t.Fatalf("to the allow page: %v", err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("device-code")))
	if err != nil || strings.TrimSpace(shown) != da.UserCode {
		t.Fatalf("the allow page shows code %q (%v), the device %q", shown, err, da.UserCode)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || !strings.Contains(title, "Allow Living Room TV on your device?") {
		t.Fatalf("allow page title %q %v", title, err)
	}
	// The stylesheet loaded under the page's CSP (no inline styles or
	// scripts are needed).
	font, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("device-code")).fontFamily`))
	if err != nil || !strings.Contains(font, "monospace") {
		t.Errorf("code styled with %q (%v): stylesheet not applied", font, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("device-allow"))); err != nil {
		t.Fatal(err)
	}
	var body string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err == nil && strings.Contains(body, "Device connected") {
			break
		}
	}
	if !strings.Contains(body, "Device connected") {
		t.Fatalf("after Allow the browser shows %q", body)
	}
	select {
	case got := <-done:
		s.checkTokens(t, got)
	case <-time.After(30 * time.Second):
		t.Fatal("the device got no tokens")
	}
}
