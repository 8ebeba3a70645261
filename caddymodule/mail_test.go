package caddymodule

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/mail"
)

func TestMailCaddyfileErrors(t *testing.T) {
	wrap := func(body string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n" + body + "\n\t}\n}\n"
	}
	for _, tc := range []struct{ name, input, want string }{
		{"unknown option", wrap("mail {\nsender a@b.example\n}"), `unknown mail option "sender"`},
		{"unknown smtp option", wrap("mail {\nsmtp s.example:587 {\nssl\n}\n}"), `unknown smtp option "ssl"`},
		{"bad from", wrap("mail {\nfrom \"Acme noreply\"\n}"), "mail from:"},
		{"from with CRLF", wrap("mail {\nfrom \"Acme\r\nBcc: e@evil.example <n@a.example>\"\n}"), "control character"},
		{"from two values", wrap("mail {\nfrom a@b.example c@d.example\n}"), "from takes exactly one value"},
		{"smtp without port", wrap("mail {\nsmtp s.example\n}"), "not host:port"},
		{"smtp bad port", wrap("mail {\nsmtp s.example:mail\n}"), "no valid port"},
		{"smtp without address", wrap("mail {\nsmtp {\nstarttls\n}\n}"), "smtp takes exactly one value"},
		{"two securities", wrap("mail {\nsmtp s.example:587 {\ntls\nstarttls\n}\n}"), "choose one of tls, starttls, none"},
		{"security with a value", wrap("mail {\nsmtp s.example:587 {\ntls yes\n}\n}"), "wrong argument count"},
		{"plain credentials to a remote host", wrap("mail {\nsmtp s.example:25 {\nnone\nusername u\npassword p\n}\n}"), "not sent in plain text"},
		{"username without password", wrap("mail {\nsmtp s.example:587 {\nusername u\n}\n}"), "go together"},
		{"bad timeout", wrap("mail {\nsmtp s.example:587 {\ntimeout soon\n}\n}"), "not a positive duration"},
		{"outbox with smtp", wrap("mail {\nsmtp s.example:587\noutbox /tmp/o\n}"), "only used without smtp"},
		{"smtp twice", wrap("mail {\nsmtp a.example:587\nsmtp b.example:587\n}"), "smtp is configured twice"},
		{"mail twice", wrap("mail {\nfrom a@b.example\n}\nmail {\nfrom a@b.example\n}"), "mail is configured twice"},
		{"mail argument", wrap("mail smtp.example:25"), "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.input)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %v, want %q naming the line", err, tc.want)
			}
		})
	}
	// Placeholders are checked once replaced, at start.
	if _, err := adapt(t, wrap("mail {\nfrom {env.MAIL_FROM}\nsmtp {env.SMTP_ADDRESS} {\nusername u\npassword {env.P}\n}\n}")); err != nil {
		t.Fatalf("placeholders: %v", err)
	}
	if out, _ := adapt(t, wrap("dev")); strings.Contains(string(out), `"mail"`) {
		t.Errorf("mail in a configuration without it: %s", out)
	}
}

// provision provisions an app in a fresh data directory.
func provision(t *testing.T, a *App) error {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	a.Store = &StoreConfig{Path: filepath.Join(t.TempDir(), "gatehouse.db")}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() { a.Cleanup(); cancel() })
	return a.Provision(ctx)
}

// TestMailerWithoutMailBlock: the quick start, with no mail settings,
// has a mailer writing to the outbox in Caddy's data directory, from
// noreply@<issuer host>.
func TestMailerWithoutMailBlock(t *testing.T) {
	a := &App{Issuer: "https://auth.acme.example"}
	if err := provision(t, a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Mailer().Run(ctx)
	err := a.Mailer().Send(ctx, mail.Message{To: "alice@example.com", Template: mail.Activation,
		Data: map[string]any{"link": "https://auth.acme.example/activate?t=1"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(caddy.AppDataDir(), "gatehouse", "outbox")
	var files []string
	for deadline := time.Now().Add(5 * time.Second); len(files) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		files, _ = filepath.Glob(filepath.Join(dir, "*.eml"))
	}
	if len(files) != 1 {
		t.Fatalf("%d messages in %s", len(files), dir)
	}
	raw, _ := os.ReadFile(files[0])
	if !strings.Contains(string(raw), "From: <noreply@auth.acme.example>") || !strings.Contains(string(raw), "auth.acme.example account") {
		t.Fatalf("message:\n%s", raw)
	}
}

// TestMailPlaceholdersReplaced: placeholders are replaced before the
// settings are checked at start.
func TestMailPlaceholdersReplaced(t *testing.T) {
	t.Setenv("GATEHOUSE_TEST_SMTP", "mail.acme.example:25")
	t.Setenv("GATEHOUSE_TEST_FROM", "Acme <noreply@acme.example>")
	app := func() *App {
		return &App{Issuer: "https://auth.acme.example", Mail: &MailConfig{From: "{env.GATEHOUSE_TEST_FROM}",
			SMTP: &MailSMTPConfig{Address: "{env.GATEHOUSE_TEST_SMTP}", Security: "none", Username: "u", Password: "{env.GATEHOUSE_TEST_PW}"}}}
	}
	// GATEHOUSE_TEST_PW is unset: the password is empty.
	if err := provision(t, app()); err == nil || !strings.Contains(err.Error(), "username and password go together") {
		t.Fatalf("Provision: %v", err)
	}
	t.Setenv("GATEHOUSE_TEST_PW", "pw")
	if err := provision(t, app()); err == nil || !strings.Contains(err.Error(), "not sent in plain text to mail.acme.example") {
		t.Fatalf("Provision: %v", err)
	}
	t.Setenv("GATEHOUSE_TEST_FROM", "not an address")
	a := &App{Issuer: "https://auth.acme.example", Mail: &MailConfig{From: "{env.GATEHOUSE_TEST_FROM}"}}
	if err := provision(t, a); err == nil || !strings.Contains(err.Error(), "not a mail address") {
		t.Fatalf("Provision: %v", err)
	}
	a = &App{Issuer: "https://auth.acme.example", Mail: &MailConfig{Templates: "/nonexistent/gatehouse/mail"}}
	if err := provision(t, a); err == nil || !strings.Contains(err.Error(), "mail templates") {
		t.Fatalf("Provision: %v", err)
	}
}
