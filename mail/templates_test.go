package mail

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuiltinTemplates(t *testing.T) {
	tpl, err := loadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]string{Activation: "Activate your Example account", PasswordReset: "Set a new password for Example",
		MagicLink: "Your sign-in link for Example", RegistrationWelcome: "Welcome to Example"}
	for name, want := range subjects {
		subject, text, html, err := tpl.render(name, sampleData())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if subject != want {
			t.Errorf("%s: subject %q, want %q", name, subject, want)
		}
		link := sampleData()["link"].(string)
		if !strings.Contains(text, link) || !strings.Contains(html, `href="`+link+`"`) {
			t.Errorf("%s: the link is missing from a part", name)
		}
		if strings.Contains(text+html, "<no value>") || strings.Contains(text+html, "%!") {
			t.Errorf("%s: a value is missing:\n%s\n%s", name, text, html)
		}
	}
	_, text, _, _ := tpl.render(PasswordReset, sampleData())
	if !strings.Contains(text, "If you did not ask for this, ignore this message") {
		t.Errorf("password_reset lacks the note for who did not ask:\n%s", text)
	}
	// Without the optional values: no button without a link, no empty
	// "for ." without a lifetime, no "<no value>".
	_, text, html, err := tpl.render(RegistrationWelcome, map[string]any{"site": "Example"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "<a ") || strings.Contains(text, "Sign in here") || strings.Contains(text+html, "<no value>") {
		t.Errorf("welcome without a link:\n%s\n%s", text, html)
	}
	_, text, _, _ = tpl.render(Activation, map[string]any{"site": "Example", "link": "https://a.example/x"})
	if strings.Contains(text, "works once, for") || strings.Contains(text, `account ""`) {
		t.Errorf("activation without expires or username:\n%s", text)
	}
}

// TestTemplateOverrides: a file of the same name in the templates
// directory replaces the built-in one; the others stay.
func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "activation.txt"), []byte(`{{define "subject"}}Bienvenue chez {{.site}}{{end}}
Bonjour {{.username}}, activez votre compte : {{.link}}`), 0o600)
	os.WriteFile(filepath.Join(dir, "layout.html"), []byte(`{{define "action"}}Go{{end}}{{define "notes"}}{{end}}
{{define "layout"}}<html><body class="acme">{{template "content" .}}<a href="{{.link}}">{{template "action" .}}</a>{{template "notes" .}}</body></html>{{end}}`), 0o600)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("other files are left alone"), 0o600)
	out := t.TempDir()
	e := newEnv(t, Config{Outbox: out, Templates: dir})
	e.send(t, "alice@example.com", Activation, map[string]any{"link": "https://auth.acme.example/a?t=1", "username": "<alice>"})
	e.send(t, "alice@example.com", MagicLink, magicData)
	e.m.deliverDue(context.Background())
	entries, _ := os.ReadDir(out)
	if len(entries) != 2 {
		t.Fatalf("%d files", len(entries))
	}
	for _, en := range entries {
		raw, _ := os.ReadFile(filepath.Join(out, en.Name()))
		p := parseMessage(t, string(raw))
		if !strings.Contains(p.html, `<body class="acme">`) {
			t.Errorf("%s: the layout override is not used", en.Name())
		}
		if strings.Contains(en.Name(), "activation") {
			if p.subject(t) != "Bienvenue chez Acme" || !strings.Contains(p.text, "Bonjour <alice>, activez votre compte : https://auth.acme.example/a?t=1") {
				t.Errorf("the text override is not used: %q %q", p.subject(t), p.text)
			}
			if !strings.Contains(p.html, "Activate my account") || !strings.Contains(p.html, "&lt;alice&gt;") {
				t.Errorf("the built-in HTML is not used, or not escaped:\n%s", p.html)
			}
		} else if p.subject(t) != "Your sign-in link for Acme" {
			t.Errorf("magic_link lost its built-in text: %q", p.subject(t))
		}
	}
}

func TestTemplateOverrideErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, src, want string
	}{
		{"misspelt name", "activaton.txt", `{{define "subject"}}x{{end}}`, "activaton.txt in"},
		{"no subject", "activation.txt", "Open {{.link}}", "defines no subject line"},
		{"parse error", "magic_link.txt", `{{define "subject"}}x{{end}}{{.link`, "magic_link.txt"},
		{"unknown function", "magic_link.html", `{{template "layout" .}}{{define "content"}}{{shout .name}}{{end}}`, "magic_link.html"},
		{"fails when rendered", "password_reset.txt", `{{define "subject"}}x{{end}}{{.link.Host}}`, "password_reset with sample values"},
		{"layout without layout", "layout.html", `<p>no blocks</p>`, `no such template "layout"`},
		{"empty subject", "registration_welcome.txt", `{{define "subject"}} {{end}}hi`, "subject line is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.src), 0o600)
			_, err := New(Config{Store: openStore(t, filepath.Join(t.TempDir(), "db"), &clock{}), From: "noreply@acme.example",
				Outbox: t.TempDir(), Templates: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
	_, err := New(Config{Store: openStore(t, filepath.Join(t.TempDir(), "db"), &clock{}), From: "noreply@acme.example",
		Outbox: t.TempDir(), Templates: "/nonexistent/templates"})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing templates directory: %v", err)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{15 * time.Minute, "15 minutes"}, {time.Minute, "1 minute"}, {time.Hour, "1 hour"}, {90 * time.Minute, "90 minutes"},
		{48 * time.Hour, "2 days"}, {24 * time.Hour, "1 day"}, {1500 * time.Millisecond, "2 seconds"}, {30 * time.Second, "30 seconds"},
		{time.Duration(0), ""}, {-time.Minute, ""}, {"a quarter of an hour", "a quarter of an hour"}, {42, ""}, {nil, ""},
	} {
		if got := humanDuration(tc.in); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNewChecksConfig: what New refuses.
func TestNewChecksConfig(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"), &clock{})
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no store", Config{From: "a@b.example", Outbox: "/tmp/x"}, "store"},
		{"no sender", Config{Store: st, Outbox: "/tmp/x"}, "sender"},
		{"bad sender", Config{Store: st, From: "Acme noreply", Outbox: "/tmp/x"}, "not a mail address"},
		{"CRLF in the sender", Config{Store: st, From: "Acme\r\nBcc: e@evil.example <noreply@acme.example>", Outbox: "/tmp/x"}, "control character"},
		{"no outbox", Config{Store: st, From: "noreply@acme.example"}, "outbox directory is required"},
		{"outbox and smtp", Config{Store: st, From: "noreply@acme.example", Outbox: "/tmp/x", SMTP: &SMTP{Addr: "a.example:25"}}, "only used without smtp"},
		{"bad smtp", Config{Store: st, From: "noreply@acme.example", SMTP: &SMTP{Addr: "a.example"}}, "host:port"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	m, err := New(Config{Store: st, From: "noreply@acme.example", Outbox: "/tmp/x"})
	if err != nil || m.cfg.Site != "acme.example" {
		t.Fatalf("site without a display name: %v %q", err, m.cfg.Site)
	}
}
