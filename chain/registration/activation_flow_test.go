package registration_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// sendActivation signs up username in a new browser and has the
// activation link mailed; it returns the browser, its "check your mail"
// page and the link.
func (v *env) sendActivation(username, email string) (*http.Client, string, string) {
	v.t.Helper()
	b := v.browser()
	_, page := v.signUp(b, username, email)
	_, page = v.post(b, "/login", form(page))
	if !strings.Contains(page, "Check your mail") {
		v.t.Fatalf("not sent:\n%s", page)
	}
	return b, page, v.lastMail().Data["link"].(string)
}

// Links expire after link_ttl, work once, and a made-up one is refused
// (and counted).
func TestActivationLinksExpireAndWorkOnce(t *testing.T) {
	v := newEnv(t, signupChain(`{"link_ttl": "2h"}`))
	b, _, link := v.sendActivation("eve", "eve@example.com")
	v.clk.add(2*time.Hour + time.Second)
	if st, page := v.useLink(b, link); st != http.StatusBadRequest || !strings.Contains(page, "This link is not valid") {
		t.Fatalf("expired link: %d", st)
	}
	if !v.user("eve").Inactive {
		t.Fatal("an expired link activated")
	}
	if st, _ := v.useLink(b, v.srv.URL+"/login/m/Activate/mail?t=made-up-token-made-up-token"); st != http.StatusBadRequest {
		t.Fatalf("made-up link: %d", st)
	}
	if ev := v.event("login_failed"); ev == nil || ev["module"] != "Activate" || ev["reason"] != "mailed link unknown, used or expired" {
		t.Fatalf("audit %v", ev)
	}
}

// The link outlives the sign-in that asked (24 hours by default): used
// after it ended, it activates the account and says so; the person
// then signs in with the password and needs no activation.
func TestActivationLinkAfterTheSignInEnded(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	b, _, link := v.sendActivation("fred", "fred@example.com")
	v.clk.add(3 * time.Hour) // the sign-in page lasts 30 minutes
	st, page := v.useLink(v.browser(), link)
	if st != http.StatusOK || !strings.Contains(page, "Your account is active") {
		t.Fatalf("late link: %d\n%s", st, page)
	}
	u := v.user("fred@example.com")
	if u.Inactive || !u.EmailVerified {
		t.Fatalf("not activated: %+v", u)
	}
	if ev := v.event("account_activated"); ev == nil || ev["reason"] != "activation link, apart from its sign-in" {
		t.Fatalf("audit %v", ev)
	}
	if st, _ := v.useLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("late link twice: %d", st)
	}
	if _, body := v.signIn(v.browser(), "fred"); body != v.done(u.Subject, "pwd") {
		t.Fatalf("sign-in afterwards: %s", body)
	}
}

// Opened in another browser (a phone's mail app), the link activates the
// account there; the browser that asked stops waiting and finishes
// without the link's pass.
func TestActivationLinkInAnotherBrowser(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	b, waiting, link := v.sendActivation("gina", "gina@example.com")
	if st, page := v.useLink(v.browser(), link); st != http.StatusOK || !strings.Contains(page, "Your account is active") {
		t.Fatalf("link elsewhere: %d\n%s", st, page)
	}
	// The "check your mail" page, loaded again, goes on.
	u := v.user("gina")
	if u.Inactive {
		t.Fatal("not activated")
	}
	if st, _ := v.get(b, "/done"); st != http.StatusUnauthorized {
		t.Fatalf("a session before the asking browser went on: %d", st)
	}
	_, body := v.get(b, pageURL(waiting))
	if body != v.done(u.Subject, "pwd") {
		t.Fatalf("asking browser: %s", body)
	}
}

// pageURL is the address of a login page (its attempt), to load it again.
func pageURL(page string) string {
	return "/login?" + "attempt=" + form(page).Get("attempt")
}

// With the activation module disabled an inactive account cannot get a
// session at all: its password passes, and the sign-in ends on a page
// saying it is not active.
func TestInactiveAccountWithoutActivationGetsNoSession(t *testing.T) {
	mods := signupChain(`{}`)
	v := newEnv(t, mods)
	v.signUp(v.browser(), "hank", "hank@example.com")
	mods[2].Disabled = true
	w := newEnvOn(t, v, mods)
	b := w.browser()
	st, page := w.signIn(b, "hank")
	if st != http.StatusForbidden || !strings.Contains(page, "This account is not active yet") {
		t.Fatalf("inactive without activation: %d\n%s", st, page)
	}
	if st, _ := w.get(b, "/done"); st != http.StatusUnauthorized {
		t.Fatalf("session: %d", st)
	}
	if ev := w.event("login_failed"); ev == nil || ev["reason"] != "account not activated" || ev["user"] != "hank" {
		t.Fatalf("audit %v", ev)
	}
}

// As a start module, activation asks for the account and answers the
// same for an unknown name, an active account and one awaiting
// activation; only the last is mailed. Its link then signs the person
// in (it proves the address).
func TestActivationAsFirstStep(t *testing.T) {
	mods := []chain.ModuleConfig{
		{Name: "Sign in", Kind: "password", Levels: []string{"1"}},
		{Name: "Create an account", Kind: "registration", Levels: []string{"1"}},
		{Name: "Activate", Kind: "activation", Levels: []string{"1"}, After: []string{"Sign in", "Create an account"}},
		{Name: "Activate my account", Kind: "activation", Levels: []string{"1"}},
	}
	v := newEnv(t, mods)
	v.signUp(v.browser(), "ivy", "ivy@example.com")
	var ivy *http.Client
	ask := func(login string) (string, time.Duration) {
		b := v.browser()
		if login == "ivy@example.com" {
			ivy = b
		}
		_, page := v.get(b, "/start")
		page = v.open(b, page, "Activate my account", "Activate your account")
		if !strings.Contains(page, `name="login"`) {
			t.Fatalf("first step asks nothing:\n%s", page)
		}
		start := time.Now()
		_, page = v.post(b, "/login", form(page, "login", login))
		return tokenish.ReplaceAllString(page, ""), time.Since(start)
	}
	sent := len(v.outbox.Sent())
	unknown, _ := ask("nobody@example.com")
	active, _ := ask("alice")
	if len(v.outbox.Sent()) != sent {
		t.Fatalf("mailed an unknown or active account: %+v", v.lastMail())
	}
	waiting, _ := ask("ivy@example.com")
	if unknown != waiting || active != waiting || !strings.Contains(waiting, "Check your mail") {
		t.Fatalf("answers differ:\n%s\n---\n%s\n---\n%s", unknown, active, waiting)
	}
	if m := v.lastMail(); m.To != "ivy@example.com" || len(v.outbox.Sent()) != sent+1 {
		t.Fatalf("mail %+v", m)
	}
	// About the same time (medians of a few rounds, taken in turns).
	var tu, tw []time.Duration
	for i := range 5 {
		addr := fmt.Sprintf("waiting%d@example.com", i)
		if _, err := v.users.Create(context.Background(), users.User{Username: fmt.Sprintf("waiting%d", i), Email: addr, Inactive: true}, ""); err != nil {
			t.Fatal(err)
		}
		_, d := ask(fmt.Sprintf("nobody%d@example.com", i))
		tu = append(tu, d)
		_, d = ask(addr)
		tw = append(tw, d)
	}
	if r := float64(median(tw)) / float64(median(tu)); r < 0.33 || r > 3 {
		t.Errorf("unknown addresses took %v, known ones %v", tu, tw)
	}
	// The link signs in the browser that asked: it proves the address,
	// as a magic link does. (The sends above were counted against this
	// address: ten minutes later they are forgotten.)
	v.clk.add(11 * time.Minute)
	if _, body := v.useLink(ivy, v.outbox.Sent()[sent].Data["link"].(string)); body != v.done(v.user("ivy").Subject, "otp") {
		t.Fatalf("link: %s", body)
	}
}

// "Send a new message" mails a new link (the last one stops working);
// sending is regulated per account: soon the next send must wait.
func TestActivationResendIsRegulated(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	b, waiting, first := v.sendActivation("jill", "jill@example.com")
	_, page := v.choose(b, waiting, "Send a new message")
	st, page := v.post(b, "/login", form(page))
	second := v.lastMail().Data["link"].(string)
	if st != http.StatusOK || second == first || !strings.Contains(page, "Check your mail") {
		t.Fatalf("resend: %d", st)
	}
	if st, _ := v.useLink(b, first); st != http.StatusBadRequest {
		t.Fatalf("replaced link: %d", st)
	}
	sent := len(v.outbox.Sent())
	var refused bool
	for range 5 {
		_, page = v.choose(b, page, "Send a new message")
		if st, page = v.post(b, "/login", form(page)); st == http.StatusTooManyRequests {
			refused = true
			break
		}
	}
	if !refused || !strings.Contains(page, "Too many attempts") {
		t.Fatalf("resending was never slowed: %d mails", len(v.outbox.Sent())-sent)
	}
	if ev := v.event("rate_limited"); ev == nil || ev["module"] != "Activate" || ev["user"] != "jill" {
		t.Fatalf("audit %v", ev)
	}
}

// An active account meets activation only when a client asks for its
// level: then it confirms the address like any mailed link.
func TestActiveAccountAskedForTheActivationLevel(t *testing.T) {
	mods := signupChain(`{}`)
	mods[2].Levels = []string{"verified"}
	v := newEnv(t, mods)
	b := v.browser()
	if _, body := v.signIn(b, "alice"); body != v.done(v.alice.Subject, "pwd") {
		t.Fatalf("without acr_values: %s", body)
	}
	b = v.browser()
	_, page := v.get(b, "/start?acr=verified")
	page = v.open(b, page, "Sign in", "Sign in")
	_, page = v.post(b, "/login", form(page, "username", "alice", "password", strong))
	if !strings.Contains(page, "Confirm your email address") || !strings.Contains(page, "a•••@example.com") {
		t.Fatalf("step-up page:\n%s", page)
	}
	_, page = v.post(b, "/login", form(page))
	m := v.lastMail()
	if m.To != "alice@example.com" {
		t.Fatalf("mail %+v", m)
	}
	if _, body := v.useLink(b, m.Data["link"].(string)); body != v.done(v.alice.Subject, "pwd", "otp", "mfa") {
		t.Fatalf("link: %s", body)
	}
	if ev := v.event("account_activated"); ev != nil {
		t.Fatalf("an active account activated again: %v", ev)
	}
}
