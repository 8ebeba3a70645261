package e2e

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Password forgotten and magic links in chromium, signing in at an OIDC
// client (x/oauth2, go-oidc).

// chromeAt waits until chromium's page is at a URL starting with prefix
// and returns it.
func chromeAt(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	var loc string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(loc, prefix) {
			return loc
		}
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("chromium is at %s, not %s…: %q", loc, prefix, body)
	return ""
}

func chromeText(t *testing.T, ctx context.Context) string {
	t.Helper()
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// rpFlow is one authorization of client app.
type rpFlow struct {
	rp       *oidcClient
	verifier string
}

func (s *recoverSetup) newFlow(t *testing.T) *rpFlow {
	return &rpFlow{rp: s.client(t), verifier: oauth2.GenerateVerifier()}
}

func (f *rpFlow) authURL(extra ...oauth2.AuthCodeOption) string {
	return f.rp.conf.AuthCodeURL("recover-state", append(extra, oauth2.S256ChallengeOption(f.verifier))...)
}

// claims redeems the code at callback URL loc and verifies the ID token.
func (f *rpFlow) claims(t *testing.T, loc string) map[string]any {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil || u.Query().Get("code") == "" || u.Query().Get("state") != "recover-state" {
		t.Fatalf("callback %q", loc)
	}
	tok, err := f.rp.conf.Exchange(f.rp.ctx, u.Query().Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := f.rp.provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(f.rp.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]any{}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func amrList(c map[string]any) []string {
	var out []string
	for _, v := range c["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// askInChromium follows the offer link (by its module) on the sign-in
// page chromium shows and asks for a mail to login.
func askInChromium(t *testing.T, ctx context.Context, module, login string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.Click(chromedp.CSS(`ul.offers a[href*="module=`+module+`"]`)),
		chromedp.WaitVisible(chromedp.ID("f-login")),
		chromedp.SendKeys(chromedp.ID("f-login"), login),
		chromedp.Submit(chromedp.ID("f-login")),
	)
	if err != nil {
		t.Fatalf("asking for a mail: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// Reading while the page changes may fail: read again.
		if body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err == nil && strings.Contains(body, "Check your mail") {
			return
		}
	}
	t.Fatalf("no 'check your mail' page: %q", chromeText(t, ctx))
}

// openInChromium opens a mailed link and presses its button.
func openInChromium(t *testing.T, ctx context.Context, link string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`button[type=submit]`))); err != nil {
		t.Fatalf("opening the link: %v", err)
	}
}

// openElsewhere opens a mailed link in another browser and presses its
// button there; it returns the answer.
func openElsewhere(t *testing.T, b *browser, link string) (*http.Response, string) {
	t.Helper()
	resp, page := b.get(link)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the link's page: %d", resp.StatusCode)
	}
	return b.submitForm(resp.Request.URL.String(), page, nil)
}

// Password forgotten in chromium: the link from a real mail, a new
// password, signed in at the client with amr otp; alice's session in a
// second browser ends, client bc gets its back-channel logout token;
// the old password and the used link are refused.
func TestBrowserPasswordForgotten(t *testing.T) {
	s := newRecoverSetup(t, "")
	second := newBrowser(t, "bc.localhost")
	sid := s.bcLogin(t, second)

	ctx := newChromium(t)
	flow := s.newFlow(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(flow.authURL())); err != nil {
		t.Fatal(err)
	}
	askInChromium(t, ctx, "password_reset", "alice")
	m := s.smtp.nth(1)
	if m.to != "alice@example.com" || !strings.HasPrefix(m.link(), s.issuer+"/login/m/password_reset/mail?t=") || m.code() != "" ||
		!strings.Contains(m.text, "15 minutes") {
		t.Fatalf("mail %+v", m)
	}
	openInChromium(t, ctx, m.link())
	const pw = "plum tractor violet ninety"
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("f-confirm")),
		chromedp.SendKeys(chromedp.ID("f-password"), pw),
		chromedp.SendKeys(chromedp.ID("f-confirm"), pw),
		chromedp.Submit(chromedp.ID("f-confirm")),
	)
	if err != nil {
		t.Fatal(err)
	}
	c := flow.claims(t, chromeAt(t, ctx, s.redirect))
	if c["preferred_username"] != "alice" || c["acr"] != "1" || !slices.Equal(amrList(c), []string{"otp"}) {
		t.Fatalf("id token %v", c)
	}

	// The second browser's session is gone, and bc heard of it.
	got := s.rc.waitFor("/bc", 1)
	if got[0]["sid"] != sid || got[0]["aud"] != "bc" {
		t.Fatalf("logout token %v, want sid %s", got[0], sid)
	}
	bc := s.client(t).conf
	bc.ClientID, bc.RedirectURL = "bc", "http://bc.localhost/callback"
	resp, _ := second.get(bc.AuthCodeURL("st", oauth2.SetAuthURLParam("prompt", "none"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "login_required" {
		t.Fatalf("the second browser after the reset: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st, _ := tryPassword(t, s.idpSetup, "alice", "correct horse battery"); st != http.StatusUnauthorized {
		t.Fatalf("old password: %d", st)
	}
	if st, _ := tryPassword(t, s.idpSetup, "alice", pw); st != http.StatusFound {
		t.Fatalf("new password: %d", st)
	}
	// The link is spent.
	if err := chromedp.Do(ctx, chromedp.Navigate(m.link())); err != nil {
		t.Fatal(err)
	}
	if body := chromeText(t, ctx); !strings.Contains(body, "This link is not valid") {
		t.Fatalf("the link again: %q", body)
	}
	if ev := findAudit(t, s.caddy, "password_reset", map[string]string{"reason": "completed", "user": "alice"}); len(ev) != 1 {
		t.Fatalf("audit: %v", ev)
	}
}

// A magic link: in the browser that asked it signs in; in another
// browser it is refused there and its code, typed where it was asked,
// signs in; expired links are refused; with other_browser continue the
// browser that opens the link signs in.
func TestBrowserMagicLink(t *testing.T) {
	s := newRecoverSetup(t, "link_ttl 1m")
	// A mail to let expire while the rest runs.
	if st, _, _ := s.ask(t, "Email me a sign-in link", "alice"); st != http.StatusOK {
		t.Fatalf("asking: %d", st)
	}
	asked := time.Now()
	expiring := s.smtp.nth(1)
	if resp, _ := newBrowser(t).get(expiring.link()); resp.StatusCode != http.StatusOK {
		t.Fatalf("a fresh link: %d", resp.StatusCode)
	}

	ctx := newChromium(t)
	flow := s.newFlow(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(flow.authURL())); err != nil {
		t.Fatal(err)
	}
	askInChromium(t, ctx, "magic_link", "alice@example.com")
	m := s.smtp.nth(2)
	if len(m.code()) != 8 || !strings.Contains(m.text, "Test App") || !strings.Contains(m.text, "for 1 minute") {
		t.Fatalf("mail %+v", m)
	}
	openInChromium(t, ctx, m.link())
	c := flow.claims(t, chromeAt(t, ctx, s.redirect))
	if c["preferred_username"] != "alice" || !slices.Equal(amrList(c), []string{"otp"}) {
		t.Fatalf("same browser: %v", c)
	}

	// Another browser: refused, told about the code; the code typed in
	// chromium signs in there.
	flow = s.newFlow(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(flow.authURL(oauth2.SetAuthURLParam("prompt", "login")))); err != nil {
		t.Fatal(err)
	}
	askInChromium(t, ctx, "magic_link", "alice")
	m = s.smtp.nth(3)
	resp, page := openElsewhere(t, newBrowser(t, s.appHost), m.link())
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "Or type the code from the message there.") {
		t.Fatalf("another browser: %d\n%s", resp.StatusCode, page)
	}
	err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("f-mail_code"), m.code()), chromedp.Submit(chromedp.ID("f-mail_code")))
	if err != nil {
		t.Fatal(err)
	}
	if c := flow.claims(t, chromeAt(t, ctx, s.redirect)); !slices.Equal(amrList(c), []string{"otp"}) {
		t.Fatalf("code: %v", c)
	}
	// Both the link and the code are spent.
	if resp, _ := newBrowser(t).get(m.link()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the link after its code: %d", resp.StatusCode)
	}

	// other_browser continue: the browser that opens the link is signed
	// in at the IdP; the application's request stays with the browser
	// that started it (the provider binds it there): the new browser is
	// told it is signed in and to open the application again, which then
	// signs in without asking.
	// The browser that asked cannot finish.
	s.caddy.reload(s.caddyfile(s.global("link_ttl 1m\n\t\t\t\tother_browser continue")))
	flow = s.newFlow(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(flow.authURL(oauth2.SetAuthURLParam("prompt", "login")))); err != nil {
		t.Fatal(err)
	}
	askInChromium(t, ctx, "magic_link", "alice")
	m = s.smtp.nth(4)
	phone := newBrowser(t, s.appHost)
	resp, page = openElsewhere(t, phone, m.link())
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/authorize/resume" || !strings.Contains(page, "You are signed in in this browser") ||
		strings.Contains(resp.Request.URL.String(), "code=") {
		t.Fatalf("continue in another browser: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	there := s.newFlow(t)
	resp, _ = phone.get(there.authURL(oauth2.SetAuthURLParam("prompt", "none")))
	if c := there.claims(t, resp.Header.Get("Location")); !slices.Equal(amrList(c), []string{"otp"}) {
		t.Fatalf("the application in the new browser: %v", c)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("f-mail_code"), m.code()), chromedp.Submit(chromedp.ID("f-mail_code"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if body := chromeText(t, ctx); !strings.Contains(body, "This sign-in has expired") {
		t.Fatalf("the asking browser after the move: %q", body)
	}

	// The first mail's link has expired meanwhile.
	time.Sleep(time.Until(asked.Add(61 * time.Second)))
	if resp, _ := newBrowser(t).get(expiring.link()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an expired link: %d", resp.StatusCode)
	}
}
