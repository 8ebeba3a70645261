package mail

import (
	"context"
	"crypto/tls"
	"html"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

var magicData = map[string]any{"link": "https://auth.acme.example/login/mail?t=abc&x=1", "code": "472913",
	"username": "alice", "name": "Alice Liddell", "client_name": "Wiki", "expires": 15 * time.Minute}

// TestDeliversTextAndHTML sends a magic link to a real server and reads
// it back: envelope, headers, both alternatives.
func TestDeliversTextAndHTML(t *testing.T) {
	srv := startSMTPD(t, smtpdOptions{})
	e := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	e.send(t, "alice@example.com", MagicLink, magicData)
	e.m.deliverDue(context.Background())

	got := srv.received()
	if len(got) != 1 {
		t.Fatalf("received %d messages, want 1", len(got))
	}
	r := got[0]
	if r.MailFrom != "noreply@acme.example" || len(r.RcptTos) != 1 || r.RcptTos[0] != "alice@example.com" {
		t.Fatalf("envelope from %q to %v", r.MailFrom, r.RcptTos)
	}
	p := parseMessage(t, r.Data)
	from, err := netmail.ParseAddress(p.header.Get("From"))
	if err != nil || from.Name != "Acme" || from.Address != "noreply@acme.example" {
		t.Errorf("From %q", p.header.Get("From"))
	}
	if to, err := netmail.ParseAddress(p.header.Get("To")); err != nil || to.Address != "alice@example.com" {
		t.Errorf("To %q", p.header.Get("To"))
	}
	if s := p.subject(t); s != "Your sign-in link for Acme" {
		t.Errorf("Subject %q", s)
	}
	if d, err := p.header.Date(); err != nil || !d.Equal(e.clock.Now()) {
		t.Errorf("Date %q (%v), want the time it was queued", p.header.Get("Date"), err)
	}
	id := p.header.Get("Message-Id")
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@acme.example>") || len(id) != len("<@acme.example>")+32 {
		t.Errorf("Message-ID %q", id)
	}
	for h, want := range map[string]string{"Mime-Version": "1.0", "Auto-Submitted": "auto-generated", "X-Mailer": "", "User-Agent": ""} {
		if got := p.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	for _, want := range []string{"Hello Alice Liddell,", "sign in to Wiki through Acme", magicData["link"].(string), "    472913", "15 minutes"} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text part lacks %q:\n%s", want, p.text)
		}
	}
	for _, want := range []string{`href="` + html.EscapeString(magicData["link"].(string)) + `"`, "<strong>Wiki</strong>", ">472913<",
		"<title>Your sign-in link for Acme</title>", "15 minutes"} {
		if !strings.Contains(p.html, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, p.html)
		}
	}
	// Delivered: gone from the store, link and all.
	if n := e.queued(t); n != 0 {
		t.Errorf("%d messages still queued", n)
	}
	if e.m.Stats.Delivered.Load() != 1 || e.m.Stats.Queued.Load() != 1 {
		t.Errorf("stats delivered %d queued %d", e.m.Stats.Delivered.Load(), e.m.Stats.Queued.Load())
	}
	if strings.Contains(dumpStore(t, e.st), "abc") {
		t.Error("the link is still in the store after delivery")
	}
}

// dumpStore returns whatever the queue still holds.
func dumpStore(t *testing.T, st store.Store) string {
	t.Helper()
	ids, err := st.SetMembers(context.Background(), setQueue)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, id := range ids {
		v, err := st.Get(context.Background(), keyMessage+id)
		if err == nil {
			b.Write(v)
		}
	}
	return b.String()
}

// TestTLSWithLogin: STARTTLS and implicit TLS, each with a login that
// is sent only once the connection is encrypted.
func TestTLSWithLogin(t *testing.T) {
	cert := newTestCert(t)
	for mode, security := range map[string]string{"starttls": SecurityStartTLS, "tls": SecurityTLS} {
		t.Run(mode, func(t *testing.T) {
			srv := startSMTPD(t, smtpdOptions{mode: mode, cert: cert, user: "mailer", password: "s3cret pass"})
			e := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: security, Username: "mailer", Password: "s3cret pass",
				TLSConfig: &tls.Config{RootCAs: cert.roots}}})
			e.send(t, "alice@example.com", PasswordReset, map[string]any{"link": "https://auth.acme.example/reset?t=1"})
			e.m.deliverDue(context.Background())
			got := srv.received()
			if len(got) != 1 || !got[0].TLS || got[0].Login == nil || *got[0].Login != "mailer" {
				t.Fatalf("received %+v; want one message over TLS, logged in; log %s", got, e.logs.String())
			}
		})
	}
}

// TestTLSRefusals: STARTTLS required but not offered, a certificate not
// trusted, implicit TLS to a plain server, a wrong password: each is a
// failed attempt, retried later, and never a message sent in the clear.
func TestTLSRefusals(t *testing.T) {
	cert := newTestCert(t)
	plain := startSMTPD(t, smtpdOptions{})
	starttls := startSMTPD(t, smtpdOptions{mode: "starttls", cert: cert, user: "mailer", password: "pw"})
	for _, tc := range []struct {
		name string
		srv  *smtpd
		smtp SMTP
		want string
	}{
		{"starttls not offered", plain, SMTP{Addr: plain.addr, Security: SecurityStartTLS}, "STARTTLS"},
		{"untrusted certificate", starttls, SMTP{Addr: starttls.addr, Security: SecurityStartTLS, Username: "mailer", Password: "pw"}, "certificate"},
		{"implicit tls to a plain server", plain, SMTP{Addr: plain.addr, Security: SecurityTLS, TLSConfig: &tls.Config{RootCAs: cert.roots}}, "connecting"},
		{"wrong password", starttls, SMTP{Addr: starttls.addr, Security: SecurityStartTLS, Username: "mailer", Password: "nope",
			TLSConfig: &tls.Config{RootCAs: cert.roots}}, "AUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.srv.received())
			smtp := tc.smtp
			smtp.Timeout = time.Second // implicit TLS to a plain server waits for it
			e := newEnv(t, Config{SMTP: &smtp})
			e.send(t, "alice@example.com", Activation, map[string]any{"link": "https://auth.acme.example/activate?t=1"})
			e.m.deliverDue(context.Background())
			if n := len(tc.srv.received()); n != before {
				t.Fatalf("the server received a message")
			}
			if e.m.Stats.Failed.Load() != 1 || e.queued(t) != 1 {
				t.Fatalf("failed %d, queued %d: want one failed attempt, the message kept", e.m.Stats.Failed.Load(), e.queued(t))
			}
			warn := e.logs.lines("will retry")
			if len(warn) != 1 || !strings.Contains(warn[0]["error"].(string), tc.want) {
				t.Fatalf("log %v, want an error about %s", warn, tc.want)
			}
		})
	}
}

// TestCredentialsInPlainTextOnlyToLoopback: none with credentials is
// refused for a remote host, and works to a relay on this machine.
func TestCredentialsInPlainTextOnlyToLoopback(t *testing.T) {
	_, err := New(Config{Store: openStore(t, t.TempDir()+"/db", &clock{}), From: "noreply@acme.example",
		SMTP: &SMTP{Addr: "mail.acme.example:25", Security: SecurityNone, Username: "u", Password: "p"}})
	if err == nil || !strings.Contains(err.Error(), "plain text") {
		t.Fatalf("New: %v, want a refusal of plain-text credentials", err)
	}
	srv := startSMTPD(t, smtpdOptions{user: "relay", password: "pw", authWithoutTLS: true})
	e := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone, Username: "relay", Password: "pw"}})
	e.send(t, "alice@example.com", RegistrationWelcome, nil)
	e.m.deliverDue(context.Background())
	if got := srv.received(); len(got) != 1 || got[0].Login == nil || *got[0].Login != "relay" {
		t.Fatalf("received %+v, want one message after login", got)
	}
}

func TestSMTPValidate(t *testing.T) {
	for _, tc := range []struct {
		smtp SMTP
		want string // "" valid
	}{
		{SMTP{Addr: "smtp.example.com:587"}, ""},
		{SMTP{Addr: "[::1]:25", Security: SecurityNone, Username: "u", Password: "p"}, ""},
		{SMTP{Addr: "localhost:25", Security: SecurityNone, Username: "u", Password: "p"}, ""},
		{SMTP{Addr: "smtp.example.com"}, "not host:port"},
		{SMTP{Addr: ":25"}, "not host:port"},
		{SMTP{Addr: "smtp.example.com:smtp"}, "no valid port"},
		{SMTP{Addr: "smtp.example.com:0"}, "no valid port"},
		{SMTP{Addr: "smtp.example.com:70000"}, "no valid port"},
		{SMTP{Addr: "smtp.exa\r\nmple.com:25"}, "not host:port"},
		{SMTP{Addr: "smtp.example.com:25", Security: "ssl"}, "security must be"},
		{SMTP{Addr: "smtp.example.com:25", Username: "u"}, "go together"},
		{SMTP{Addr: "smtp.example.com:25", Security: SecurityNone, Username: "u", Password: "p"}, "plain text"},
		{SMTP{Addr: "127.0.0.2:25", Security: SecurityNone, Username: "u", Password: "p"}, ""},
		{SMTP{Addr: "10.0.0.1:25", Security: SecurityNone, Username: "u", Password: "p"}, "plain text"},
		{SMTP{Addr: "smtp.example.com:25", Timeout: -time.Second}, "timeout"},
	} {
		err := tc.smtp.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.smtp, err, tc.want)
		}
	}
	if s := (&SMTP{Addr: "smtp.example.com:465"}); s.security() != SecurityTLS {
		t.Error("port 465 does not default to implicit TLS")
	}
	if s := (&SMTP{Addr: "smtp.example.com:25"}); s.security() != SecurityStartTLS {
		t.Error("port 25 does not default to STARTTLS")
	}
}

// TestPermanentRefusal: a recipient the server refuses for good is given
// up at once (audited); the other messages of the pass still go.
func TestPermanentRefusal(t *testing.T) {
	srv := startSMTPD(t, smtpdOptions{rejectRcpt: "nobody"})
	e := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	e.send(t, "nobody@example.com", RegistrationWelcome, nil)
	e.send(t, "alice@example.com", RegistrationWelcome, nil)
	e.m.deliverDue(context.Background())
	if got := srv.received(); len(got) != 1 || got[0].RcptTos[0] != "alice@example.com" {
		t.Fatalf("received %+v", got)
	}
	if e.m.Stats.GivenUp.Load() != 1 || e.queued(t) != 0 {
		t.Fatalf("given up %d, queued %d", e.m.Stats.GivenUp.Load(), e.queued(t))
	}
	ev := e.audit.lines("security event")
	if len(ev) != 1 || ev[0]["event"] != "mail_given_up" || ev[0]["target"] != "nobody@example.com" || ev[0]["level"] != "WARN" ||
		!strings.Contains(ev[0]["reason"].(string), "registration_welcome") || !strings.Contains(ev[0]["reason"].(string), "550") {
		t.Fatalf("audit %v", ev)
	}
}
