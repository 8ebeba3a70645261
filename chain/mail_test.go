package chain_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

func mailEnv(t *testing.T, s string, opt func(*chain.Options)) *cenv {
	return newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Email", Kind: "test-mail", Levels: []string{"1"}, Settings: settings(s)},
	}, opt)
}

// ask starts a sign-in in b and has a link mailed to address; it
// returns the "check your mail" page.
func (c *cenv) ask(b *http.Client, address string) (int, string) {
	c.t.Helper()
	_, page := get(c.t, b, c.srv.URL+"/start")
	_, page = c.choose(b, page, "Email")
	if !strings.Contains(page, `name="step" value="send"`) {
		c.t.Fatalf("no send button:\n%s", page)
	}
	return post(c.t, b, c.srv.URL+"/login", form(page, "email", address))
}

// lastLink is the URL and code of the last mail.
func (c *cenv) lastLink() (string, string) {
	c.t.Helper()
	m, ok := c.outbox.Last()
	if !ok {
		c.t.Fatal("nothing mailed")
	}
	code, _ := m.Data["code"].(string)
	return m.Data["url"].(string), code
}

// useLink opens a mailed link in b and presses its button.
func (c *cenv) useLink(b *http.Client, link string) (int, string) {
	c.t.Helper()
	st, page := get(c.t, b, link)
	if st != http.StatusOK {
		return st, page
	}
	return post(c.t, b, c.srv.URL+"/login/m/Email/mail", form(page))
}

var tokenish = regexp.MustCompile(`(value="|attempt=)[A-Za-z0-9_-]{20,}`)

// A mailed link signs in once, in the browser that asked; a GET spends
// nothing (mail scanners); an unknown address gets the same answer.
func TestMailModule(t *testing.T) {
	c := mailEnv(t, `{"code": true}`, nil)
	b := c.client()
	st, waiting := c.ask(b, "alice@example.com")
	if st != http.StatusOK || !strings.Contains(waiting, "Check your mail") || !strings.Contains(waiting, `name="mail_code"`) {
		t.Fatalf("after sending: %d\n%s", st, waiting)
	}
	link, code := c.lastLink()
	if m, _ := c.outbox.Last(); m.To != "alice@example.com" || !strings.HasPrefix(link, c.srv.URL+"/login/m/Email/mail?t=") || len(code) != 8 {
		t.Fatalf("mail %+v", m)
	}

	// Unknown address: the same page, nothing mailed.
	sent := len(c.outbox.Sent())
	st2, other := c.ask(c.client(), "nobody@example.com")
	if st2 != st || tokenish.ReplaceAllString(other, "") != tokenish.ReplaceAllString(waiting, "") {
		t.Fatalf("unknown address answered otherwise: %d\n%s\n---\n%s", st2, other, waiting)
	}
	if len(c.outbox.Sent()) != sent {
		t.Fatal("mail sent to an unknown address")
	}

	// Opening the link spends nothing; in another browser it is refused
	// and stays good.
	get(t, b, link)
	if st, body := c.useLink(c.client(), link); st != http.StatusConflict || !strings.Contains(body, "Open this link where you signed in") {
		t.Fatalf("link in another browser: %d", st)
	}
	if st, body := c.useLink(b, link); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("link: %d %s", st, body)
	}
	if st, _ := c.useLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("link used twice: %d", st)
	}
	if st, _ := c.useLink(b, c.srv.URL+"/login/m/Email/mail?t=made-up-token"); st != http.StatusBadRequest {
		t.Fatalf("made-up link: %d", st)
	}
	// The confirming POST needs this page's CSRF token.
	if st, _ := post(t, b, c.srv.URL+"/login/m/Email/mail", map[string][]string{"t": {"x"}}); st != http.StatusForbidden {
		t.Fatalf("POST without CSRF: %d", st)
	}

	// The code, typed in the browser that asked: wrong, then right;
	// then the link of the same mail is spent.
	b = c.client()
	_, waiting = c.ask(b, "alice@example.com")
	link, code = c.lastLink()
	st, page := post(t, b, c.srv.URL+"/login", form(waiting, "mail_code", "00000000"))
	if st != http.StatusUnauthorized || alert(page) != "Wrong code." {
		t.Fatalf("wrong code: %d %q", st, alert(page))
	}
	if st, body := post(t, b, c.srv.URL+"/login", form(page, "mail_code", code[:4]+" "+code[4:])); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("code: %d %s", st, body)
	}
	if st, _ := c.useLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("link after its code: %d", st)
	}

	// A new mail for the same sign-in replaces the last; a link does not
	// outlive its TTL.
	b = c.client()
	_, waiting = c.ask(b, "alice@example.com")
	first, _ := c.lastLink()
	_, page = c.choose(b, waiting, "Send a new message")
	if st, _ := post(t, b, c.srv.URL+"/login", form(page, "email", "alice@example.com")); st != http.StatusOK {
		t.Fatalf("sending again: %d", st)
	}
	second, _ := c.lastLink()
	if second == first {
		t.Fatal("the same link sent again")
	}
	if st, _ := c.useLink(b, first); st != http.StatusBadRequest {
		t.Fatalf("replaced link: %d", st)
	}
	c.clk.add(16 * time.Minute)
	if st, _ := c.useLink(b, second); st != http.StatusBadRequest {
		t.Fatalf("expired link: %d", st)
	}
}

// ContinueThere: the link signs in the browser that opens it, and the
// browser that asked cannot finish any more.
func TestMailLinkContinuesInAnotherBrowser(t *testing.T) {
	c := mailEnv(t, `{"continue_there": true}`, nil)
	a := c.client()
	_, waiting := c.ask(a, "alice@example.com")
	link, _ := c.lastLink()
	if strings.Contains(waiting, `name="mail_code"`) {
		t.Fatal("code field without codes")
	}
	other := c.client()
	if st, body := c.useLink(other, link); body != c.done(c.alice.Subject, "otp") {
		t.Fatalf("link in another browser: %d %s", st, body)
	}
	step := regexp.MustCompile(`href="(/login\?attempt=[^"]+)"`).FindStringSubmatch(waiting)
	if step == nil {
		t.Fatalf("no link on the waiting page:\n%s", waiting)
	}
	if st, body := get(t, a, c.srv.URL+strings.ReplaceAll(step[1], "&amp;", "&")); st != http.StatusBadRequest || !strings.Contains(body, "expired") {
		t.Fatalf("the asking browser after the move: %d", st)
	}
}

// Mails count against the address and the account like failed
// attempts: nobody floods an inbox.
func TestMailSendsAreRegulated(t *testing.T) {
	c := mailEnv(t, `{}`, func(o *chain.Options) {
		lim, err := regulate.New(o.Store, regulate.DefaultPolicy(), o.Sessions.Now)
		if err != nil {
			t.Fatal(err)
		}
		o.Regulate = lim
	})
	for i := range 8 {
		st, page := c.ask(c.client(), "alice@example.com")
		if st == http.StatusTooManyRequests {
			if i < 3 || !strings.Contains(page, "Too many attempts") {
				t.Fatalf("refused after %d mails:\n%s", i, page)
			}
			return
		}
		c.clk.add(time.Minute)
	}
	t.Fatalf("8 mails to one account in 8 minutes all sent (%d mails)", len(c.outbox.Sent()))
}

// "Trust this browser", ticked when the mail was asked for, holds for
// the browser that asked when its link is used there.
func TestMailLinkRemembersTheAskingBrowser(t *testing.T) {
	for _, elsewhere := range []bool{false, true} {
		c := newCEnv(t, []chain.ModuleConfig{
			mod("Password", "password", []string{"1"}),
			{Name: "Email", Kind: "test-mail", Levels: []string{"2"}, After: []string{"Password"}, Remember: chain.RememberPersistent,
				Settings: settings(`{"continue_there": true}`)},
		}, nil)
		b := c.client()
		_, page := get(t, b, c.srv.URL+"/start")
		_, page = post(t, b, c.srv.URL+"/login", form(page, "username", "alice", "password", "pw"))
		if !strings.Contains(page, `name="remember"`) {
			t.Fatalf("no remember box:\n%s", page)
		}
		post(t, b, c.srv.URL+"/login", form(page, "remember", "on"))
		link, _ := c.lastLink()
		user := b
		if elsewhere {
			user = c.client()
		}
		st, body := c.useLink(user, link)
		if elsewhere {
			// The sign-in moved keeps only what the link proved: the
			// password is asked again there.
			if !strings.Contains(body, `name="password"`) {
				t.Fatalf("moved sign-in: %d\n%s", st, body)
			}
			st, body = post(t, user, c.srv.URL+"/login", form(body, "username", "alice", "password", "pw"))
		}
		want := c.done(c.alice.Subject, "pwd", "otp", "mfa")
		if elsewhere {
			want = c.done(c.alice.Subject, "otp", "pwd", "mfa") // the link first
		}
		if body != want {
			t.Fatalf("elsewhere %v: %d %s", elsewhere, st, body)
		}
		trusted, _ := c.st.SetMembers(t.Context(), "remember-user:"+c.alice.Subject)
		if (len(trusted) == 1) == elsewhere {
			t.Fatalf("elsewhere %v: trusted %v", elsewhere, trusted)
		}
	}
}
