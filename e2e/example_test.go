package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickStartExample runs the README's first command's config,
// Caddyfile.example (on free ports): it signs in as the demo user at the
// legacy app behind the gate, and signs up a new account there, whose
// activation mail lands in the outbox; its link signs the account in.
func TestQuickStartExample(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	ports := map[string]int{}
	for _, p := range []string{"9000", "9001", "9002", "9101"} {
		ports[p] = freePort(t)
		cfg = strings.ReplaceAll(cfg, ":"+p, fmt.Sprintf(":%d", ports[p]))
	}
	cfg = strings.Replace(cfg, "{\n\tdefault_bind 127.0.0.1", "{\n\tadmin {admin}\n\tdefault_bind 127.0.0.1", 1)
	c := startCaddy(t, cfg)
	app := fmt.Sprintf("http://app.localhost:%d/", ports["9002"])
	b := newBrowser(t)
	resp, page := b.get(app)
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("no login page: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.submitLogin(resp.Request.URL.String(), page, "demo", "demo-password-change-me")
	if resp.StatusCode != 200 || !strings.Contains(page, "Remote-User:   demo") {
		t.Fatalf("demo sign-in: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(c.log.String(), "GATEHOUSE DEMO USER IS ACTIVE") {
		t.Fatal("no warning about the demo user")
	}

	// Sign up: the activation mail goes to the outbox.
	b = newBrowser(t)
	resp, page = b.get(app)
	for _, offer := range []string{"Create an account", "Forgot password?"} {
		if !strings.Contains(page, ">"+offer+"</a>") {
			t.Fatalf("the sign-in page does not offer %q:\n%s", offer, page)
		}
	}
	resp, page = choose(t, b, resp.Request.URL.String(), page, "Create an account")
	const password = "violet tractor wanders 93 laps"
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"username": {"newbie"}, "email": {"newbie@example.com"},
		"name": {"New Person"}, "password": {password}, "password_confirm": {password}})
	if resp, page = b.submitForm(resp.Request.URL.String(), page, nil); !strings.Contains(page, "Check your mail") {
		t.Fatalf("after signing up: %d\n%s", resp.StatusCode, page)
	}
	m := outboxMail(t, filepath.Join(c.dir, "data", "caddy", "gatehouse", "outbox"), "newbie@example.com")
	if !strings.Contains(m.subject, "Activate") || m.link() == "" {
		t.Fatalf("activation mail %+v", m)
	}
	if resp, page = useLink(b, m.link()); resp.StatusCode != 200 || !strings.Contains(page, "Remote-User:   newbie") {
		t.Fatalf("after the activation link: %d\n%s", resp.StatusCode, page)
	}
	// Level 2 asks the new account to set up a second factor on the
	// spot: TOTP or a security key, its choice.
	resp, page = b.get(app + "admin/")
	if !strings.Contains(page, ">totp</a>") || !strings.Contains(page, ">security key</a>") {
		t.Fatalf("admin area for a new account:\n%s", page)
	}
	if _, page = choose(t, b, resp.Request.URL.String(), page, "totp"); !strings.Contains(page, "Set up two-step verification") || !strings.Contains(page, `name="code"`) {
		t.Fatalf("TOTP for a new account:\n%s", page)
	}
}

// outboxMail waits for the message to to in an outbox directory of .eml
// files and decodes it.
func outboxMail(t *testing.T, dir, to string) message {
	t.Helper()
	dec := &smtpd{t: t}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, n := range names {
			raw, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), "To: <"+to+">") || strings.Contains(string(raw), "To: "+to) {
				return dec.decode(n, to, string(raw))
			}
		}
	}
	t.Fatalf("no message to %s in %s", to, dir)
	return message{}
}
