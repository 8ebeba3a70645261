package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// passkeyCaddyfile: a password, a security key after it for level 2,
// and a passwordless passkey granting 1 and 2; /admin/ needs 2.
const passkeyCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		chain {
			password {
				levels 1
			}
			"Security key" {
				kind webauthn
				levels 2
				after password
			}
			Passkey {
				kind webauthn
				levels 1 2
			}
		}
	}
}

%[1]s {
	gatehouse_idp
}

%[2]s {
	gatehouse_gate {
		header assertion X-Assertion
	}
	route /admin/* {
		gatehouse_gate {
			acr 2
		}
	}
	reverse_proxy %[3]s
}
`

func newPasskeySetup(t *testing.T) *gateSetup {
	up := echoUpstream(t)
	s := &gateSetup{idpSetup: &idpSetup{authPort: freePort(t)}}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.app = fmt.Sprintf("http://app.localhost:%d", freePort(t))
	s.caddy = startCaddy(t, fmt.Sprintf(passkeyCaddyfile, s.issuer, s.app, strings.TrimPrefix(up.URL, "http://")))
	s.addUser(t, "alice", "correct horse battery")
	s.addUser(t, "bob", "correct horse battery")
	return s
}

// withAuthenticator adds a DevTools virtual authenticator to the tab:
// CTAP2, built in, with resident keys and user verification that
// succeeds, answering at once.
func withAuthenticator(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	var id webauthn.AuthenticatorID
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		id = res.AuthenticatorID
		return err
	}))
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	return id
}

// echoAt waits until the tab shows the upstream's echo for a page
// under prefix and returns it.
func echoAt(t *testing.T, ctx context.Context, prefix string) map[string]string {
	t.Helper()
	var loc, body string
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(loc, prefix) {
			break
		}
	}
	if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	var echo map[string]string
	if !strings.HasPrefix(loc, prefix) || json.Unmarshal([]byte(body), &echo) != nil {
		t.Fatalf("the tab is at %q, not %s, showing:\n%s", loc, prefix, body)
	}
	return echo
}

// signOut forgets every cookie of the browser (a new visit, same
// authenticator).
func signOut(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
}

func typePassword(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("f-password")),
		chromedp.SendKeys(chromedp.ID("f-username"), user),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")))
	if err != nil {
		t.Fatal(err)
	}
}

// usePasskey presses the passkey page's button once it is there.
func usePasskey(t *testing.T, ctx context.Context, title string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("gh-passkey"))); err != nil {
		t.Fatal(err)
	}
	if h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); err != nil || h1 != title {
		t.Fatalf("passkey page %q (%v), want %q", h1, err, title)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("gh-passkey"))); err != nil {
		t.Fatal(err)
	}
}

// Passkeys in chromium with the virtual authenticator: registered during
// a step-up; then used passwordless with no username typed — from the
// sign-in form's autofill (the virtual authenticator answers a
// conditional request at once) and from the passkey's own page — one
// gesture reaching the acr 2 of /admin/; as a second factor after a
// password; removed on the account page, and another added there.
func TestBrowserPasskeys(t *testing.T) {
	s := newPasskeySetup(t)
	ctx := newChromium(t)
	auth := withAuthenticator(t, ctx)

	// The sign-in form: passkey autofill on the username field, the
	// page's one script is Gatehouse's.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/"), chromedp.WaitVisible(chromedp.ID("f-username"))); err != nil {
		t.Fatal(err)
	}
	ac, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("f-username"), "autocomplete"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("script"), "src"))
	if err != nil || ac.Value != "username webauthn" || src.Value != s.issuer+"/static/webauthn.js" {
		t.Fatalf("sign-in form: autocomplete %q, script %q (%v)", ac.Value, src.Value, err)
	}
	typePassword(t, ctx, "alice")
	if echo := echoAt(t, ctx, s.app+"/"); echo["Remote-Acr"] != "1" {
		t.Fatalf("password: %v", echo)
	}

	// Step-up to /admin/: alice has no key, so she registers one.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/admin/")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("f-keyname")), chromedp.SendKeys(chromedp.ID("f-keyname"), "Laptop")); err != nil {
		t.Fatal(err)
	}
	usePasskey(t, ctx, "Add a passkey")
	echo := echoAt(t, ctx, s.app+"/admin/")
	if amr := amrOf(assertionClaims(t, echo["X-Assertion"])); echo["Remote-Acr"] != "2" || !slices.Contains(amr, "pwd") || !slices.Contains(amr, "hwk") {
		t.Fatalf("after registering: %v, amr %v", echo, amr)
	}
	out, err := s.caddy.cli("", "user", "action", "alice", "Security key", "list")
	if err != nil || !strings.Contains(out, "Laptop  id ") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	// Passwordless from the autofill: the sign-in form's conditional
	// request is answered, nothing typed, level 2 at once.
	signOut(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/admin/")); err != nil {
		t.Fatal(err)
	}
	echo = echoAt(t, ctx, s.app+"/admin/")
	if amr := amrOf(assertionClaims(t, echo["X-Assertion"])); echo["Remote-Acr"] != "2" || echo["Remote-User"] != "alice" ||
		!slices.Equal(amr, []string{"hwk", "user", "mfa"}) {
		t.Fatalf("passwordless by autofill: %v, amr %v", echo, amr)
	}

	// Passwordless from the passkey's page: the authenticator waits for
	// a touch while the form's autofill request is pending, and is
	// touched once the button is pressed there.
	signOut(t, ctx)
	presence(t, ctx, auth, false)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/admin/"), chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.Click(chromedp.CSS(`a[href*="module=Passkey"]`))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("gh-passkey"))); err != nil {
		t.Fatal(err)
	}
	presence(t, ctx, auth, true)
	usePasskey(t, ctx, "Sign in with a passkey")
	echo = echoAt(t, ctx, s.app+"/admin/")
	if amr := amrOf(assertionClaims(t, echo["X-Assertion"])); echo["Remote-Acr"] != "2" || echo["Remote-User"] != "alice" ||
		!slices.Equal(amr, []string{"hwk", "user", "mfa"}) {
		t.Fatalf("passwordless: %v, amr %v", echo, amr)
	}

	// Second factor after the password.
	signOut(t, ctx)
	presence(t, ctx, auth, false)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/admin/")); err != nil {
		t.Fatal(err)
	}
	typePassword(t, ctx, "alice")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("gh-passkey"))); err != nil {
		t.Fatal(err)
	}
	presence(t, ctx, auth, true)
	usePasskey(t, ctx, "Use your passkey")
	echo = echoAt(t, ctx, s.app+"/admin/")
	if amr := amrOf(assertionClaims(t, echo["X-Assertion"])); echo["Remote-Acr"] != "2" || !slices.Equal(amr, []string{"pwd", "hwk", "user", "mfa"}) {
		t.Fatalf("second factor: %v, amr %v", echo, amr)
	}

	// The account page lists the key; it is removed there, and another
	// is added there.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`button[value="remove"]`))); err != nil {
		t.Fatal(err)
	}
	if text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"))); err != nil || !strings.Contains(text, "Passkeys and security keys") ||
		!strings.Contains(text, "Laptop — added ") {
		t.Fatalf("account page (%v):\n%s", err, text)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="remove"]`))); err != nil {
		t.Fatal(err)
	}
	if text := mainText(t, ctx, func(s string) bool { return !strings.Contains(s, "Laptop") }); !strings.Contains(text, "Add a passkey") {
		t.Fatalf("after removing:\n%s", text)
	}
	if out, err := s.caddy.cli("", "user", "action", "alice", "Passkey", "list"); err != nil || !strings.Contains(out, "alice has no passkeys") {
		t.Fatalf("list after removing: %v\n%s", err, out)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href*="/account/add"]`)), chromedp.WaitVisible(chromedp.ID("f-keyname")),
		chromedp.SendKeys(chromedp.ID("f-keyname"), "Phone")); err != nil {
		t.Fatal(err)
	}
	usePasskey(t, ctx, "Add a passkey")
	mainText(t, ctx, func(s string) bool { return strings.Contains(s, "Phone — added ") })
}

// mainText waits until the tab's page says what ok wants, and returns
// it.
func mainText(t *testing.T, ctx context.Context, ok func(string) bool) string {
	t.Helper()
	var text string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"))); err == nil {
			if text = got; ok(text) {
				return text
			}
		}
	}
	t.Fatalf("the page does not say what it should:\n%s", text)
	return ""
}

// presence turns the virtual authenticator's automatic touch on or off
// (off: a request waits for a touch that does not come).
func presence(t *testing.T, ctx context.Context, auth webauthn.AuthenticatorID, on bool) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, webauthn.SetAutomaticPresenceSimulation, webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth, Enabled: on})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
}

var credIDRE = regexp.MustCompile(`id ([A-Za-z0-9_-]+)`)

// refusalsJS answers alice's key page from the page itself, as a
// script of an attacker's could: an assertion of bob's key (same
// authenticator), alice's assertion sent to another challenge, then
// for its own (passes), then again (replayed). It returns the statuses.
const refusalsJS = `(async () => {
  const f = document.getElementById("gh-step");
  const b64 = buf => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const bytes = s => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), c => c.charCodeAt(0));
  const post = async (u, body) => {
    const r = await fetch(u, {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(Object.assign({attempt: f.elements.attempt.value, csrf: f.elements.csrf.value}, body))});
    return [r.status, await r.json()];
  };
  const get = async (options, id) => {
    const o = Object.assign({}, options, {challenge: bytes(options.challenge)});
    o.allowCredentials = (id ? [{id: id}] : options.allowCredentials).map(c => ({type: "public-key", id: bytes(c.id)}));
    const c = await navigator.credentials.get({publicKey: o});
    return {id: c.id, rawId: b64(c.rawId), type: c.type, response: {clientDataJSON: b64(c.response.clientDataJSON),
      authenticatorData: b64(c.response.authenticatorData), signature: b64(c.response.signature),
      userHandle: c.response.userHandle ? b64(c.response.userHandle) : undefined}};
  };
  const finish = (cont, cred) => post(f.dataset.finish, {continuation: cont, data: {credential: cred}});
  const out = [];
  let [, b1] = await post(f.dataset.begin, {});
  out.push((await finish(b1.continuation, await get(b1.data.options, %q)))[0]);
  let [, b2] = await post(f.dataset.begin, {});
  const mine = await get(b2.data.options);
  let [, b3] = await post(f.dataset.begin, {});
  out.push((await finish(b3.continuation, mine))[0]);
  out.push((await finish(b2.continuation, mine))[0]);
  out.push((await finish(b2.continuation, mine))[0]);
  return out.join(" ");
})()`

// An assertion of another user's key, an assertion replayed to another
// challenge and an answer replayed are refused, in chromium.
func TestBrowserPasskeyRefusals(t *testing.T) {
	s := newPasskeySetup(t)
	ctx := newChromium(t)
	auth := withAuthenticator(t, ctx)
	// keyPage signs user in with the password up to the key's page (the
	// sign-in form's autofill request waits meanwhile: no touch).
	keyPage := func(user string) {
		signOut(t, ctx)
		presence(t, ctx, auth, false)
		if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/admin/")); err != nil {
			t.Fatal(err)
		}
		typePassword(t, ctx, user)
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("gh-passkey"))); err != nil {
			t.Fatal(err)
		}
		presence(t, ctx, auth, true)
	}
	for _, user := range []string{"bob", "alice"} {
		keyPage(user)
		usePasskey(t, ctx, "Add a passkey")
		if echo := echoAt(t, ctx, s.app+"/admin/"); echo["Remote-User"] != user {
			t.Fatalf("%s registers: %v", user, echo)
		}
	}
	out, err := s.caddy.cli("", "user", "action", "bob", "Security key", "list")
	m := credIDRE.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("bob's keys: %v\n%s", err, out)
	}

	keyPage("alice")
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(refusalsJS, m[1]), chromedp.EvalAwaitPromise))
	if err != nil || got != "401 401 200 400" {
		t.Fatalf("bob's key, replayed assertion, own, replayed answer: %q (%v), want 401 401 200 400", got, err)
	}
	if out, err := s.caddy.cli("", "user", "action", "bob", "Security key", "remove"); err != nil || !strings.Contains(out, "1 passkey of bob removed") {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	for _, ev := range []string{`"event":"passkey_refused"`, `"event":"login_failed"`, `"event":"passkey_removed"`} {
		if !strings.Contains(s.caddy.log.String(), ev) {
			t.Errorf("no %s in the log", ev)
		}
	}
}

// Without JavaScript the passkey page says passkeys need it, shows no
// button, and offers the password; the password form still signs in.
func TestBrowserPasskeysWithoutJS(t *testing.T) {
	s := newPasskeySetup(t)
	ctx := newChromium(t)
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}), chromedp.Navigate(s.app+"/"), chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.Click(chromedp.CSS(`a[href*="module=Passkey"]`)))
	if err != nil {
		t.Fatal(err)
	}
	text := mainText(t, ctx, func(s string) bool { return strings.Contains(s, "Sign in with a passkey") })
	if !strings.Contains(text, "Passkeys need JavaScript") {
		t.Fatalf("no word about JavaScript:\n%s", text)
	}
	if err := chromedp.Do(ctx, chromedp.WaitNotVisible(chromedp.ID("gh-passkey"))); err != nil {
		t.Fatalf("the passkey button shows without JavaScript (%v)", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href*="module=password"]`))); err != nil {
		t.Fatal(err)
	}
	typePassword(t, ctx, "alice")
	if echo := echoAt(t, ctx, s.app+"/"); echo["Remote-User"] != "alice" {
		t.Fatalf("password without JavaScript: %v", echo)
	}
}
