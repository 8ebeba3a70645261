package chain_test

import (
	"context"
	"github.com/gatehouse-idp/gatehouse/internal/logtest"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/magic_link"
	_ "github.com/gatehouse-idp/gatehouse/chain/password_reset"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/users"
)

// The kinds password_reset and magic_link through the real engine.

// recoverEnv is a chain of a password form with "Forgot password?"
// (Reset) and "Email me a sign-in link" (Link) beside it.
func recoverEnv(t *testing.T, reset, link string, opt func(*chain.Options)) *cenv {
	return newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}, Settings: settings(reset)},
		{Name: "Link", Kind: "magic_link", Levels: []string{"1"}, Settings: settings(link)},
	}, opt)
}

// askFor opens the start page in b, follows the offer labelled offer and
// asks for a mail to login; it returns the "check your mail" page.
func (c *cenv) askFor(b *http.Client, offer, login string) (int, string) {
	c.t.Helper()
	_, page := get(c.t, b, c.srv.URL+"/start")
	_, page = c.choose(b, page, offer)
	if !strings.Contains(page, `name="login"`) || !strings.Contains(page, `name="step" value="send"`) {
		c.t.Fatalf("no address form behind %q:\n%s", offer, page)
	}
	return post(c.t, b, c.srv.URL+"/login", form(page, "login", login))
}

// lastMail is the last mail sent, with its link.
func (c *cenv) lastMail() (chain.Mail, string) {
	c.t.Helper()
	m, ok := c.outbox.Last()
	if !ok {
		c.t.Fatal("nothing mailed")
	}
	link, _ := m.Data["link"].(string)
	return m, link
}

var actionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// openLink opens a mailed link in b and presses the button of the page
// it shows.
func (c *cenv) openLink(b *http.Client, link string) (int, string) {
	c.t.Helper()
	st, page := get(c.t, b, link)
	if st != http.StatusOK {
		return st, page
	}
	m := actionRE.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("no form behind the link:\n%s", page)
	}
	return post(c.t, b, c.srv.URL+m[1], form(page))
}

// signIn signs alice in with password pw in b.
func (c *cenv) signIn(b *http.Client, pw string) (int, string) {
	c.t.Helper()
	_, page := get(c.t, b, c.srv.URL+"/start")
	return post(c.t, b, c.srv.URL+"/login", form(page, "username", "alice", "password", pw))
}

// auditLog collects audit lines.
type auditLog struct{ logtest.Buffer }

func (l *auditLog) events(event string) []map[string]any {
	return l.Records(func(m map[string]any) bool { return m["event"] == event })
}

func withAudit(l *auditLog) func(*chain.Options) {
	return func(o *chain.Options) { o.Audit = audit.New(slog.New(slog.NewJSONHandler(l, nil))) }
}

// Password forgotten: the sign-in page offers it under the form; the
// link works once, in the browser that asked; the new password is set,
// every other session of the user ends, and the person is signed in with
// amr otp.
func TestPasswordResetThroughTheEngine(t *testing.T) {
	log := &auditLog{}
	c := recoverEnv(t, `{}`, `{}`, withAudit(log))
	other := c.client()
	if _, body := c.signIn(other, "pw"); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("sign-in elsewhere: %s", body)
	}

	b := c.client()
	_, start := get(t, b, c.srv.URL+"/start")
	if !strings.Contains(start, `name="password"`) || !strings.Contains(start, `<ul class="offers">`) ||
		!strings.Contains(start, ">Forgot password?</a>") || !strings.Contains(start, ">Email me a sign-in link</a>") {
		t.Fatalf("the sign-in page does not offer both:\n%s", start)
	}
	st, waiting := c.askFor(b, "Forgot password?", "alice")
	if st != http.StatusOK || !strings.Contains(waiting, "Check your mail") || strings.Contains(waiting, `name="mail_code"`) {
		t.Fatalf("after asking: %d\n%s", st, waiting)
	}
	m, link := c.lastMail()
	if m.To != "alice@example.com" || m.Template != "password_reset" || !strings.HasPrefix(link, c.srv.URL+"/login/m/Reset/mail?t=") ||
		m.Data["expires"] != 15*time.Minute || m.Data["username"] != "alice" || m.Data["code"] != nil {
		t.Fatalf("mail %+v", m)
	}

	// An unknown name and a disabled account: the same page, nothing sent.
	bob, err := c.users.Create(context.Background(), users.User{Username: "bob", Email: "bob@example.com", Disabled: true}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"nobody@example.com", bob.Username} {
		sent := len(c.outbox.Sent())
		st2, page := c.askFor(c.client(), "Forgot password?", who)
		if st2 != st || tokenish.ReplaceAllString(page, "") != tokenish.ReplaceAllString(waiting, "") || len(c.outbox.Sent()) != sent {
			t.Fatalf("%s answered otherwise (%d, %d mails):\n%s", who, st2, len(c.outbox.Sent())-sent, page)
		}
	}

	// Another browser is refused, and the link stays good.
	if st, body := c.openLink(c.client(), link); st != http.StatusConflict || !strings.Contains(body, "Open the link in the browser where you asked for it.") {
		t.Fatalf("link in another browser: %d\n%s", st, body)
	}
	st, page := c.openLink(b, link)
	if st != http.StatusOK || !strings.Contains(page, "Choose a new password for alice.") || !strings.Contains(page, `name="confirm"`) {
		t.Fatalf("after the link: %d\n%s", st, page)
	}
	if st, _ := c.openLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("link used twice: %d", st)
	}
	st, page = post(t, b, c.srv.URL+"/login", form(page, "password", "a new secret", "confirm", "a new secrte"))
	if st != http.StatusUnauthorized || alert(page) != "The two passwords are not the same." {
		t.Fatalf("confirmation differs: %d %q", st, alert(page))
	}
	if _, body := post(t, b, c.srv.URL+"/login", form(page, "password", "a new secret", "confirm", "a new secret")); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("new password: %s", body)
	}

	// The other session ended; the old password is gone, the new works.
	if st, _ := get(t, other, c.srv.URL+"/done"); st != http.StatusUnauthorized || len(c.ended.got()) == 0 {
		t.Fatalf("the other session: %d, ended %v", st, c.ended.got())
	}
	if st, _ := c.signIn(c.client(), "pw"); st != http.StatusUnauthorized {
		t.Fatalf("old password: %d", st)
	}
	if _, body := c.signIn(c.client(), "a new secret"); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("new password at sign-in: %s", body)
	}
	if u, _ := c.users.Get(context.Background(), c.alice.Subject); !u.EmailVerified {
		t.Fatal("the address the link went to is not marked verified")
	}

	// Audited, with the address of the request, named or not.
	var reasons []string
	for _, ev := range log.events(audit.PasswordReset) {
		if ev["ip"] != "127.0.0.1" || ev["module"] != "Reset" {
			t.Fatalf("event %v", ev)
		}
		reasons = append(reasons, ev["reason"].(string))
	}
	want := []string{"requested", "requested: no account, nothing sent", "requested: no account, nothing sent", "completed"}
	if strings.Join(reasons, "|") != strings.Join(want, "|") {
		t.Fatalf("password_reset events %q", reasons)
	}
	var failed []string
	for _, ev := range log.events(audit.LoginFailed) {
		failed = append(failed, ev["module"].(string)+": "+ev["reason"].(string))
	}
	if want := "Reset: mailed link opened in another browser|Reset: mailed link unknown, used or expired|" +
		"Reset: The two passwords are not the same.|Password: Wrong username or password."; strings.Join(failed, "|") != want {
		t.Fatalf("login_failed events %q", failed)
	}
}

// The new password is under the policy; a link expires; the link's
// return is good for one password, even for two forms sent at once.
func TestPasswordResetPolicyExpiryAndRace(t *testing.T) {
	c := recoverEnv(t, `{"link_ttl": "10m"}`, `{}`, func(o *chain.Options) {
		p := users.DefaultPasswordPolicy()
		o.Users = users.NewWith(o.Store, users.Options{Now: o.Sessions.Now, Policy: &p})
	})
	b := c.client()
	c.askFor(b, "Forgot password?", "alice@example.com")
	_, link := c.lastMail()
	c.clk.add(11 * time.Minute)
	if st, _ := c.openLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("expired link: %d", st)
	}

	b = c.client()
	c.askFor(b, "Forgot password?", "alice")
	_, link = c.lastMail()
	_, page := c.openLink(b, link)
	st, page := post(t, b, c.srv.URL+"/login", form(page, "password", "short", "confirm", "short"))
	if st != http.StatusUnauthorized || !strings.Contains(alert(page), "at least 12 characters") {
		t.Fatalf("weak password: %d %q", st, alert(page))
	}
	strong := "correct horse battery staple"
	f := form(page, "password", strong, "confirm", strong)
	var wg sync.WaitGroup
	bodies := make([]string, 3)
	for i := range bodies {
		wg.Go(func() { _, bodies[i] = post(t, b, c.srv.URL+"/login", f) })
	}
	wg.Wait()
	done := 0
	for _, body := range bodies {
		if body == c.done(c.alice.Subject, "otp") {
			done++
		}
	}
	if done != 1 {
		t.Fatalf("%d of 3 forms sent at once signed in", done)
	}

	// Once signed in, the used return sets nothing again: a second reset
	// needs a new mail, and waiting past the link's life ends the form.
	b = c.client()
	c.askFor(b, "Forgot password?", "alice")
	_, link = c.lastMail()
	_, page = c.openLink(b, link)
	c.clk.add(11 * time.Minute)
	st, page = post(t, b, c.srv.URL+"/login", form(page, "password", strong+"!", "confirm", strong+"!"))
	if st != http.StatusUnauthorized || !strings.Contains(alert(page), "used already or has expired") || !strings.Contains(page, `name="login"`) {
		t.Fatalf("new password after the link's life: %d %q", st, alert(page))
	}
}

// With other_browser continue, the reset goes on in the browser that
// opened the link.
func TestPasswordResetContinuesInAnotherBrowser(t *testing.T) {
	c := recoverEnv(t, `{"other_browser": "continue"}`, `{}`, nil)
	c.askFor(c.client(), "Forgot password?", "alice")
	_, link := c.lastMail()
	phone := c.client()
	_, page := c.openLink(phone, link)
	if _, body := post(t, phone, c.srv.URL+"/login", form(page, "password", "from the phone", "confirm", "from the phone")); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("reset on the phone: %s", body)
	}
}

// A magic link signs in once, in the browser that asked; its code does
// it from another device; another browser is told to use either.
func TestMagicLinkThroughTheEngine(t *testing.T) {
	c := recoverEnv(t, `{}`, `{"link_ttl": "5m"}`, nil)
	b := c.client()
	st, waiting := c.askFor(b, "Email me a sign-in link", "alice@example.com")
	if st != http.StatusOK || !strings.Contains(waiting, `name="mail_code"`) || !strings.Contains(waiting, "for 5 minutes") {
		t.Fatalf("waiting page: %d\n%s", st, waiting)
	}
	m, link := c.lastMail()
	code, _ := m.Data["code"].(string)
	if m.Template != "magic_link" || len(code) != 8 || m.Data["client_name"] != "Test" || m.Data["expires"] != 5*time.Minute {
		t.Fatalf("mail %+v", m)
	}
	sent := len(c.outbox.Sent())
	if st2, page := c.askFor(c.client(), "Email me a sign-in link", "mallory"); st2 != st ||
		tokenish.ReplaceAllString(page, "") != tokenish.ReplaceAllString(waiting, "") || len(c.outbox.Sent()) != sent {
		t.Fatalf("unknown name answered otherwise: %d\n%s", st2, page)
	}

	st, body := c.openLink(c.client(), link)
	if st != http.StatusConflict || !strings.Contains(body, "Or type the code from the message there.") {
		t.Fatalf("another browser: %d\n%s", st, body)
	}
	if _, body := c.openLink(b, link); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("same browser: %s", body)
	}
	if st, _ := c.openLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("link again: %d", st)
	}
	if u, _ := c.users.Get(context.Background(), c.alice.Subject); !u.EmailVerified {
		t.Fatal("address not verified by the link")
	}

	// The code from the mail, read on a phone, typed where it was asked.
	b = c.client()
	_, waiting = c.askFor(b, "Email me a sign-in link", "alice")
	m, link = c.lastMail()
	if _, body := post(t, b, c.srv.URL+"/login", form(waiting, "mail_code", m.Data["code"].(string))); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("code: %s", body)
	}
	if st, _ := c.openLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("link after its code: %d", st)
	}
	// Expired.
	b = c.client()
	_, waiting = c.askFor(b, "Email me a sign-in link", "alice")
	m, _ = c.lastMail()
	c.clk.add(6 * time.Minute)
	if st, page := post(t, b, c.srv.URL+"/login", form(waiting, "mail_code", m.Data["code"].(string))); st == http.StatusOK || strings.HasPrefix(page, "DONE") {
		t.Fatalf("expired code: %d", st)
	}
}

// With other_browser continue the link signs in the browser that opens
// it, and the browser that asked cannot finish.
func TestMagicLinkContinuesInAnotherBrowser(t *testing.T) {
	c := recoverEnv(t, `{}`, `{"other_browser": "continue"}`, nil)
	b := c.client()
	_, waiting := c.askFor(b, "Email me a sign-in link", "alice")
	m, link := c.lastMail()
	if _, body := c.openLink(c.client(), link); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("other browser: %s", body)
	}
	if st, page := post(t, b, c.srv.URL+"/login", form(waiting, "mail_code", m.Data["code"].(string))); st != http.StatusBadRequest || strings.HasPrefix(page, "DONE") {
		t.Fatalf("the asking browser after the move: %d", st)
	}
}

// The offers respect disabled and show_only_when_needed; without a
// single sign-in form the person chooses, offers labelled.
func TestOffersOnTheStartPage(t *testing.T) {
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}, ShowOnlyWhenNeeded: true},
		{Name: "Link", Kind: "magic_link", Levels: []string{"mail"}},
		{Name: "Off", Kind: "magic_link", Levels: []string{"1"}, Disabled: true},
	}, nil)
	_, page := get(t, c.client(), c.srv.URL+"/start")
	if !strings.Contains(page, `name="password"`) || strings.Contains(page, "Forgot password?") || !strings.Contains(page, ">Email me a sign-in link</a>") {
		t.Fatalf("start page:\n%s", page)
	}
	if strings.Count(page, "Email me a sign-in link") != 1 {
		t.Fatalf("the disabled module is offered:\n%s", page)
	}
	// A request for level mail leads only to Link: its page at once.
	if _, page := get(t, c.client(), c.srv.URL+"/start?acr=mail"); !strings.Contains(page, `name="module" value="Link"`) {
		t.Fatalf("acr mail:\n%s", page)
	}

	c = newCEnv(t, []chain.ModuleConfig{
		{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}},
		{Name: "Link", Kind: "magic_link", Levels: []string{"1"}},
	}, nil)
	_, page = get(t, c.client(), c.srv.URL+"/start")
	if !strings.Contains(page, `class="button" href="/login?attempt=`) || !strings.Contains(page, ">Forgot password?</a>") ||
		!strings.Contains(page, ">Email me a sign-in link</a>") || strings.Contains(page, `class="offers"`) {
		t.Fatalf("chooser of offers only:\n%s", page)
	}
}

// slowMailer takes its time, like a store that syncs to disk.
type slowMailer struct {
	delay time.Duration
	chain.Mailer
}

func (s slowMailer) Send(ctx context.Context, m chain.Mail) error {
	time.Sleep(s.delay)
	return s.Mailer.Send(ctx, m)
}

// An address no account has is answered no sooner than one that gets a
// mail, even when sending is slow.
func TestMailAnswersTakeAsLong(t *testing.T) {
	for _, delay := range []time.Duration{20 * time.Millisecond, 250 * time.Millisecond} {
		c := recoverEnv(t, `{}`, `{}`, func(o *chain.Options) { o.Mailer = slowMailer{delay, o.Mailer} })
		timed := func(login string) time.Duration {
			b := c.client()
			_, page := get(t, b, c.srv.URL+"/start")
			_, page = c.choose(b, page, "Forgot password?")
			start := time.Now()
			if st, _ := post(t, b, c.srv.URL+"/login", form(page, "login", login)); st != http.StatusOK {
				t.Fatalf("asking for %s: %d", login, st)
			}
			return time.Since(start)
		}
		// Interleaved rounds, medians compared: one slow request on a
		// loaded machine says nothing.
		var known, unknown []time.Duration
		for i := range 5 {
			known = append(known, timed("alice"))
			u := timed("stranger" + string(rune('a'+i)))
			if u < 100*time.Millisecond {
				t.Fatalf("delay %s: an unknown name answered in %s", delay, u)
			}
			unknown = append(unknown, u)
			c.clk.add(time.Hour) // past regulation of the account's mails
		}
		slices.Sort(known)
		slices.Sort(unknown)
		if mk, mu := known[2], unknown[2]; mu < mk*8/10 {
			t.Fatalf("delay %s: known %v (median %s), unknown %v (median %s)", delay, known, mk, unknown, mu)
		}
	}
}

// Asking for mails is regulated per account (and per address): a known
// account and an unknown name are refused after as many requests, with
// the same page.
func TestRecoverMailsAreRegulated(t *testing.T) {
	c := recoverEnv(t, `{}`, `{}`, func(o *chain.Options) {
		lim, err := regulate.New(o.Store, regulate.DefaultPolicy(), o.Sessions.Now)
		if err != nil {
			t.Fatal(err)
		}
		o.Regulate = lim
	})
	refusedAfter := func(offer, login string) (int, string) {
		for i := range 10 {
			st, page := c.askFor(c.client(), offer, login)
			if st == http.StatusTooManyRequests {
				return i, page
			}
			c.clk.add(time.Minute)
		}
		return -1, ""
	}
	known, kpage := refusedAfter("Forgot password?", "alice")
	unknown, upage := refusedAfter("Forgot password?", "nobody@example.com")
	if known < 3 || known != unknown || kpage != upage {
		t.Fatalf("refused after %d mails to alice and %d to nobody", known, unknown)
	}
	// The same account through the other module is refused too.
	if st, _ := c.askFor(c.client(), "Email me a sign-in link", "alice@example.com"); st != http.StatusTooManyRequests {
		t.Fatalf("magic link to a banned account: %d", st)
	}
}

// An account disabled after its link came back gets no new password and
// no sign-in.
func TestPasswordResetOfADisabledAccount(t *testing.T) {
	c := recoverEnv(t, `{}`, `{}`, nil)
	b := c.client()
	c.askFor(b, "Forgot password?", "alice")
	_, link := c.lastMail()
	_, page := c.openLink(b, link)
	ctx := context.Background()
	if _, err := c.users.Update(ctx, c.alice.Subject, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if st, body := post(t, b, c.srv.URL+"/login", form(page, "password", "a new secret", "confirm", "a new secret")); st != http.StatusForbidden || !strings.Contains(body, "This account cannot sign in") {
		t.Fatalf("disabled: %d\n%s", st, body)
	}
	if u, _ := c.users.Get(ctx, c.alice.Subject); u.PasswordHash != c.alice.PasswordHash {
		t.Fatal("a disabled account's password was set")
	}
}

// A second factor placed after password_reset is asked after the reset,
// as after the password: the reset is a first factor, not a way around
// the second.
func TestPasswordResetThenSecondFactor(t *testing.T) {
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}},
		{Name: "Code", Kind: "testcode", Levels: []string{"2"}, After: []string{"Password", "Reset"}, Settings: settingsFor("testcode")},
	}, nil)
	b := c.client()
	c.askFor(b, "Forgot password?", "alice")
	_, link := c.lastMail()
	_, page := c.openLink(b, link)
	_, page = post(t, b, c.srv.URL+"/login", form(page, "password", "a new secret", "confirm", "a new secret"))
	if !strings.Contains(page, `name="code"`) {
		t.Fatalf("after the reset:\n%s", page)
	}
	if _, body := post(t, b, c.srv.URL+"/login", form(page, "code", "123456")); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("after the second factor: %s", body)
	}
}
