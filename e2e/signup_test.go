package e2e

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// signupCaddyfile: sign in, sign up, and activation after either (links
// live a minute, so that one can expire during the test); "Activate my
// account" is activation as a first step. Mail goes to a real SMTP
// server. Regulation and the sign-up limits are wide: every request of
// the test comes from 127.0.0.1.
const signupCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		mail {
			from "Acme <noreply@acme.example>"
			smtp %[2]s {
				none
			}
		}
		regulation {
			ip {
				max_retries 500
				free_retries 400
				delay 10ms
			}
		}
		client app {
			first_party
			name "Test App"
			secret app-secret/with+special&chars
			redirect_uri %[3]s
		}
		chain {
			"Sign in" {
				kind password
				levels 1
			}
			"Create an account" {
				kind registration
				levels 1
				per_address 100
			}
			"Activate my account" {
				kind activation
				levels 1
			}
			Activate {
				kind activation
				levels 1
				after "Sign in" "Create an account"
				link_ttl 1m
			}
		}
	}
}

%[1]s {
	gatehouse_idp
}

http://%[4]s {
	respond /callback "callback reached" 200
}

%[5]s {
	gatehouse_gate
	reverse_proxy %[6]s
}
`

type signupSetup struct {
	caddy                 *caddy
	smtp                  *smtpd
	issuer, redirect, app string
	appHost               string
	rp                    *oidcClient
	password              string
}

func newSignupSetup(t *testing.T) *signupSetup {
	up := echoUpstream(t)
	s := &signupSetup{smtp: startSMTPD(t), password: "violet tractor wanders 93 laps"}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", freePort(t))
	s.appHost = fmt.Sprintf("app.localhost:%d", freePort(t))
	s.redirect = "http://" + s.appHost + "/callback"
	s.app = fmt.Sprintf("http://gated.localhost:%d", freePort(t))
	s.caddy = startCaddy(t, fmt.Sprintf(signupCaddyfile, s.issuer, s.smtp.addr, s.redirect, s.appHost, s.app, strings.TrimPrefix(up.URL, "http://")))
	idp := &idpSetup{caddy: s.caddy, issuer: s.issuer, redirect: s.redirect, appHost: s.appHost}
	idp.addUser(t, "alice", "correct horse battery")
	s.rp = idp.client(t)
	return s
}

var choiceHref = regexp.MustCompile(`<a (?:class="button" )?href="([^"]+)">([^<]+)</a>`)

// choose opens the choice named name on page (at pageURL) in b.
func choose(t *testing.T, b *browser, pageURL, page, name string) (*http.Response, string) {
	t.Helper()
	for _, m := range choiceHref.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[2]) == name {
			u, _ := url.Parse(html.UnescapeString(m[1]))
			base, _ := url.Parse(pageURL)
			return b.get(base.ResolveReference(u).String())
		}
	}
	t.Fatalf("no choice %q on:\n%s", name, page)
	return nil, ""
}

// openModule goes from page (at resp) to module's page: page itself when
// its form is that module's, else by the link labelled label (a choice,
// or an offer under the sign-in form).
func openModule(t *testing.T, b *browser, resp *http.Response, page, module, label string) (*http.Response, string) {
	t.Helper()
	for _, h := range hiddenInput.FindAllStringSubmatch(page, -1) {
		if h[1] == "module" && html.UnescapeString(h[2]) == module {
			return resp, page
		}
	}
	return choose(t, b, resp.Request.URL.String(), page, label)
}

// signUp runs a sign-up in a new HTTP browser up to the activation page
// and sends the link; it returns the browser and the last page.
func (s *signupSetup) signUp(t *testing.T, username, email string) (*browser, *http.Response, string) {
	t.Helper()
	b := newBrowser(t, s.appHost)
	resp, page := b.get(s.rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	resp, page = openModule(t, b, resp, page, "Create an account", "Create an account")
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"username": {username}, "email": {email},
		"password": {s.password}, "password_confirm": {s.password}})
	if !strings.Contains(page, "Activate your account") {
		t.Fatalf("after signing up (%d):\n%s", resp.StatusCode, page)
	}
	resp, page = b.submitForm(resp.Request.URL.String(), page, nil)
	if !strings.Contains(page, "Check your mail") {
		t.Fatalf("after sending (%d):\n%s", resp.StatusCode, page)
	}
	return b, resp, page
}

// useLink opens a mailed link in b and confirms it.
func useLink(b *browser, link string) (*http.Response, string) {
	resp, page := b.get(link)
	if resp.StatusCode != http.StatusOK {
		return resp, page
	}
	return b.submitForm(resp.Request.URL.String(), page, nil)
}

// chromeWait polls the browser's location until ok says so.
func chromeWait(t *testing.T, ctx context.Context, ok func(loc string) bool) string {
	t.Helper()
	var loc string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		l, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if loc = l; ok(loc) {
			return loc
		}
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("the browser stayed at %s: %s", loc, body)
	return ""
}

// chromeSignUp fills in the sign-up form in chromium (by the link under
// the sign-in form) and presses every button until the activation mail is sent;
// then it opens the mailed link and confirms it.
func (s *signupSetup) chromeSignUp(t *testing.T, ctx context.Context, username, email string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`a[href*="module=Create"]`)),
		chromedp.Click(chromedp.CSS(`a[href*="module=Create"]`)),
		chromedp.WaitVisible(chromedp.ID("f-password_confirm")),
		chromedp.SendKeys(chromedp.ID("f-username"), username),
		chromedp.SendKeys(chromedp.ID("f-email"), email),
		chromedp.SendKeys(chromedp.ID("f-name"), "Chrome Person"),
		chromedp.SendKeys(chromedp.ID("f-password"), s.password),
		chromedp.SendKeys(chromedp.ID("f-password_confirm"), s.password),
		chromedp.Submit(chromedp.ID("f-password_confirm")),
		chromedp.WaitVisible(`//button[text()="Send the link"]`),
		chromedp.Click(`//button[text()="Send the link"]`),
		chromedp.WaitVisible(`//h1[text()="Check your mail"]`),
	)
	if err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("signing up in chromium: %v\n%s", err, body)
	}
	m := s.smtp.waitFor(email, 1)
	if m.subject != "Activate your Acme account" || !strings.Contains(m.text, `the account "`+username+`"`) || m.link() == "" {
		t.Fatalf("activation mail %+v", m)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(m.link()),
		chromedp.WaitVisible(`//button[text()="Continue"]`),
		chromedp.Click(`//button[text()="Continue"]`),
	)
	if err != nil {
		t.Fatalf("using the link in chromium: %v", err)
	}
}

// Register, get the activation mail from a real SMTP server, open its
// link, and be signed in: at an OIDC client (x/oauth2 + go-oidc, in
// chromium) with acr and amr of both steps, and through a gate, at the
// upstream with Remote-User. Links work once and expire; the pages do
// not tell known addresses from unknown ones.
func TestSignUpAndActivationEndToEnd(t *testing.T) {
	s := newSignupSetup(t)

	// A link that will have expired by the end (link_ttl 1m).
	late, _, _ := s.signUp(t, "late", "late@example.com")
	lateLink := s.smtp.waitFor("late@example.com", 1).link()
	lateSent := time.Now()

	t.Run("OIDC client in chromium", func(t *testing.T) {
		ctx := newChromium(t)
		verifier := oauth2.GenerateVerifier()
		authURL := s.rp.conf.AuthCodeURL("chrome-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-chrome"))
		if err := chromedp.Do(ctx, chromedp.Navigate(authURL)); err != nil {
			t.Fatal(err)
		}
		s.chromeSignUp(t, ctx, "newbie", "newbie@example.com")
		loc := chromeWait(t, ctx, func(l string) bool { return strings.HasPrefix(l, s.redirect) })
		u, _ := url.Parse(loc)
		if u.Query().Get("state") != "chrome-state" {
			t.Fatalf("callback %s", loc)
		}
		tok, err := s.rp.conf.Exchange(s.rp.ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := s.rp.provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(s.rp.ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Nonce         string   `json:"nonce"`
			ACR           string   `json:"acr"`
			AMR           []string `json:"amr"`
			Email         string   `json:"email"`
			EmailVerified bool     `json:"email_verified"`
			Name          string   `json:"name"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if c.Nonce != "n-chrome" || c.ACR != "1" || !slices.Equal(c.AMR, []string{"pwd", "otp", "mfa"}) || c.Email != "newbie@example.com" ||
			!c.EmailVerified || c.Name != "Chrome Person" {
			t.Fatalf("id token claims %+v", c)
		}
		out, err := s.caddy.cli("", "user", "list")
		if err != nil || !strings.Contains(out, "newbie") {
			t.Fatalf("user list: %v\n%s", err, out)
		}
	})

	t.Run("gate in chromium", func(t *testing.T) {
		ctx := newChromium(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/hello?from=signup")); err != nil {
			t.Fatal(err)
		}
		s.chromeSignUp(t, ctx, "gated", "gated@example.com")
		chromeWait(t, ctx, func(l string) bool { return strings.HasPrefix(l, s.app+"/hello") })
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil || !strings.Contains(body, `"Remote-User":"gated"`) || !strings.Contains(body, `"Remote-Email":"gated@example.com"`) {
			t.Fatalf("upstream got %q (%v)", body, err)
		}
	})

	t.Run("links work once", func(t *testing.T) {
		b, _, _ := s.signUp(t, "once", "once@example.com")
		link := s.smtp.waitFor("once@example.com", 1).link()
		if resp, _ := useLink(b, link); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), s.redirect) {
			t.Fatalf("link: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, other := range []*browser{b, newBrowser(t, s.appHost)} {
			if resp, page := useLink(other, link); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "This link is not valid") {
				t.Fatalf("link again: %d", resp.StatusCode)
			}
		}
		if resp, _ := useLink(b, s.issuer+"/login/m/Activate/mail?t=made-up-made-up-made-up-made-up"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("made-up link: %d", resp.StatusCode)
		}
	})

	t.Run("unknown addresses look like known ones", func(t *testing.T) {
		s.unknownLooksKnown(t)
	})

	t.Run("expired link", func(t *testing.T) {
		time.Sleep(time.Until(lateSent.Add(61 * time.Second)))
		resp, page := useLink(late, lateLink)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "This link is not valid") {
			t.Fatalf("expired link: %d\n%s", resp.StatusCode, page)
		}
		// Still inactive: its password leads to activation, and the user
		// list says so.
		b := newBrowser(t, s.appHost)
		resp, page = b.get(s.rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		resp, page = openModule(t, b, resp, page, "Sign in", "Sign in")
		if _, page = b.submitLogin(resp.Request.URL.String(), page, "late", s.password); !strings.Contains(page, "Activate your account") {
			t.Fatalf("inactive account after an expired link:\n%s", page)
		}
		if out, _ := s.caddy.cli("", "user", "list"); !regexp.MustCompile(`(?m)^late\s.*\sinactive\s`).MatchString(out) {
			t.Fatalf("user list:\n%s", out)
		}
	})

	for _, ev := range []string{`"event":"account_created"`, `"event":"account_activated"`, `"event":"activation_refused"`} {
		if !strings.Contains(s.caddy.log.String(), ev) {
			t.Errorf("no %s in the audit trail", ev)
		}
	}
}

var pageTokens = regexp.MustCompile(`(value="|attempt=)[A-Za-z0-9_%.-]{20,}`)

// unknownLooksKnown: activation as a first step answers an unknown
// address, an active account and an account awaiting activation alike
// (only the last is mailed), in about the same time; a sign-up with an
// address that has an account goes on as with a free one, and the
// owner is told.
func (s *signupSetup) unknownLooksKnown(t *testing.T) {
	ask := func(login string) (string, time.Duration) {
		b := newBrowser(t, s.appHost)
		resp, page := b.get(s.rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		resp, page = openModule(t, b, resp, page, "Activate my account", "Activate your account")
		start := time.Now()
		resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"login": {login}})
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", login, resp.StatusCode, page)
		}
		return pageTokens.ReplaceAllString(page, ""), took
	}
	// Accounts awaiting activation: signed up, never sent a link.
	const rounds = 7
	for i := range rounds {
		b := newBrowser(t, s.appHost)
		resp, page := b.get(s.rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		resp, page = openModule(t, b, resp, page, "Create an account", "Create an account")
		if _, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"username": {fmt.Sprintf("wait%d", i)},
			"email": {fmt.Sprintf("wait%d@example.com", i)}, "password": {s.password}, "password_confirm": {s.password}}); !strings.Contains(page, "Activate your account") {
			t.Fatalf("sign-up %d:\n%s", i, page)
		}
	}
	var unknown, waiting []time.Duration
	var first string
	for i := range rounds {
		pu, tu := ask(fmt.Sprintf("nobody%d@example.com", i))
		pw, tw := ask(fmt.Sprintf("wait%d@example.com", i))
		if pu != pw || !strings.Contains(pu, "Check your mail") {
			t.Fatalf("unknown and awaiting answered otherwise:\n%s\n---\n%s", pu, pw)
		}
		first = pu
		unknown, waiting = append(unknown, tu), append(waiting, tw)
		s.smtp.waitFor(fmt.Sprintf("wait%d@example.com", i), 1)
	}
	if pa, _ := ask("alice@example.com"); pa != first {
		t.Fatalf("an active account answered otherwise:\n%s", pa)
	}
	mu, mw := medianOf(unknown), medianOf(waiting)
	t.Logf("answer times: unknown %v (median %v), awaiting activation %v (median %v)", unknown, mu, waiting, mw)
	if r := float64(mw) / float64(mu); r < 0.5 || r > 2 {
		t.Errorf("median answer for an unknown address %v, for a known one %v", mu, mw)
	}
	for i := range rounds {
		if n := s.smtp.count(fmt.Sprintf("nobody%d@example.com", i)); n != 0 {
			t.Fatalf("mailed an unknown address")
		}
	}
	if n := s.smtp.count("alice@example.com"); n != 0 {
		t.Fatalf("mailed an active account %d times", n)
	}

	// Sign-up with alice's address: the same pages as with a free one.
	_, _, free := s.signUp(t, "fresh", "fresh@example.com")
	_, _, taken := s.signUp(t, "frank", "alice@example.com")
	if pageTokens.ReplaceAllString(free, "") != pageTokens.ReplaceAllString(taken, "") {
		t.Fatalf("a taken address answered otherwise:\n%s\n---\n%s", free, taken)
	}
	note := s.smtp.waitFor("alice@example.com", 1)
	if note.subject != "Someone signed up at Acme with your address" || !strings.Contains(note.text, `your account "alice"`) || note.link() != "" {
		t.Fatalf("owner's note %+v", note)
	}
	if s.smtp.waitFor("fresh@example.com", 1).link() == "" {
		t.Fatal("no link for the free address")
	}
}

func medianOf(ds []time.Duration) time.Duration {
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}

// caddy validate names the line of a bad module setting, and the module
// of a chain whose modules do not fit together.
func TestSignUpConfigErrors(t *testing.T) {
	dir := t.TempDir()
	validate := func(chain string) string {
		f := filepath.Join(dir, "Caddyfile")
		cf := "{\n\tgatehouse {\n\t\tissuer https://auth.example.com\n\t\tchain {\n" + chain + "\t\t}\n\t}\n}\nauth.example.com {\n\tgatehouse_idp\n}\n"
		if err := os.WriteFile(f, []byte(cf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "validate", "--config", f, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("caddy validate accepted:\n%s", cf)
		}
		return strings.ReplaceAll(string(out), `\"`, `"`) // the log line is JSON
	}
	const signIn = "\t\t\tpassword {\n\t\t\t\tlevels 1\n\t\t\t}\n"
	for _, c := range []struct{ chain, want, line string }{
		{signIn + "\t\t\tsignup {\n\t\t\t\tkind registration\n\t\t\t\tlevels 1\n\t\t\t\temail_domains acme.example ac/me\n\t\t\t}\n",
			`module signup: email_domains: "ac/me" is not a domain name, at /`, "/Caddyfile:8\""},
		{signIn + "\t\t\tactivate {\n\t\t\t\tkind activation\n\t\t\t\tlevels 1\n\t\t\t\tafter password\n\t\t\t\tlink_ttl soon\n\t\t\t}\n",
			`module activate: setting link_ttl: "soon" is not a duration (like 15m, 36h or 30d), at /`, "/Caddyfile:12\""},
		{signIn + "\t\t\tactivate {\n\t\t\t\tkind activation\n\t\t\t\tlevels 1\n\t\t\t\tafter password\n\t\t\t\tactivation_level 1\n\t\t\t}\n",
			`chain: module "activate": activation_level "1" is granted by module "password", which comes before "activate"`, ""},
		{signIn + "\t\t\tsignup {\n\t\t\t\tkind registration\n\t\t\t\tlevels 1\n\t\t\t}\n\t\t\tactivate {\n\t\t\t\tkind activation\n\t\t\t\tlevels 1\n\t\t\t\tafter password\n\t\t\t}\n",
			"no activation module comes after \"signup\": add `after signup` to \"activate\"", ""},
	} {
		if out := validate(c.chain); !strings.Contains(out, c.want) || !strings.Contains(out, c.line) {
			t.Errorf("caddy validate said:\n%s\nwant %q", out, c.want)
		}
	}
}
