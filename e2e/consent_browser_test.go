package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// callbackRecorder is a relying party's callback: it keeps what the
// browser brought (query or posted form).
type callbackRecorder struct {
	mu   sync.Mutex
	got  url.Values
	meth string
	url  string
}

func (c *callbackRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/callback" {
		http.NotFound(w, r) // the browser's favicon
		return
	}
	_ = r.ParseForm()
	c.mu.Lock()
	c.got, c.meth = r.Form, r.Method
	c.mu.Unlock()
	fmt.Fprint(w, "callback reached")
}

func (c *callbackRecorder) wait(t *testing.T) (url.Values, string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got, meth := c.got, c.meth
		c.mu.Unlock()
		if got != nil {
			return got, meth
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the browser never reached the callback")
	return nil, ""
}

// startCallback serves a recorder on a free loopback port and returns
// its redirect URI (on rp.localhost, which chromium maps to 127.0.0.1).
func startCallback(t *testing.T) (*callbackRecorder, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &callbackRecorder{}
	srv := &http.Server{Handler: rec}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rec, fmt.Sprintf("http://rp.localhost:%d/callback", ln.Addr().(*net.TCPAddr).Port)
}

// TestConsentPageInChromium: a person unticks an optional scope on the
// consent page in a real browser, cannot untick a required one, and the
// answer comes back by form_post (the page submits itself).
func TestConsentPageInChromium(t *testing.T) {
	rec, redirect := startCallback(t)
	port := freePort(t)
	issuer := fmt.Sprintf("http://auth.localhost:%d", port)
	c := startIDP(t, issuer, fmt.Sprintf(`		client tp {
			name "Third Party App"
			secret tp-secret
			redirect_uri %[2]s
		}
`, issuer, redirect))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--email", "alice@example.com", "--email-verified", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := c.cli("", "user", "set", "alice", "--phone", "+1 555 0100"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: "tp", ClientSecret: "tp-secret", Endpoint: p.Endpoint(), RedirectURL: redirect,
		Scopes: []string{"openid", "email~r", "phone", "profile"}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "form_post"))

	bctx := newChromium(t)
	err = chromedp.Do(bctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")),
		chromedp.WaitVisible(chromedp.ID("consent-allow")))
	if err != nil {
		t.Fatalf("to the consent page: %v", err)
	}
	body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	if !strings.Contains(body, "Third Party App") || !strings.Contains(body, "Your phone number") || !strings.Contains(body, "(required)") {
		t.Fatalf("consent page: %s", body)
	}
	// Click both: phone unticks, email (required, disabled) stays ticked.
	err = chromedp.Do(bctx, chromedp.Click(chromedp.ID("grant-phone")), chromedp.Click(chromedp.ID("grant-email")))
	if err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("grant-phone").checked + " " + document.getElementById("grant-email").checked + " " + document.getElementById("grant-email").disabled`))
	if err != nil || state != "false true true" {
		t.Fatalf("checkboxes (phone checked, email checked, email disabled): %q %v", state, err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("consent-allow"))); err != nil {
		t.Fatal(err)
	}
	got, method := rec.wait(t)
	if method != http.MethodPost || got.Get("state") != "st" || got.Get("iss") != issuer || got.Get("code") == "" {
		t.Fatalf("form_post brought %s %v", method, got)
	}
	tok, err := conf.Exchange(ctx, got.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if scope, _ := tok.Extra("scope").(string); scope != "openid email profile" {
		t.Errorf("granted scope %q", scope)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: "tp"}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	_ = idt.Claims(&claims)
	if claims["email"] != "alice@example.com" || claims["phone_number"] != nil || claims["preferred_username"] != "alice" {
		t.Errorf("released claims %v", claims)
	}
}
