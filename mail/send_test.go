package mail

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutbox: without SMTP each message becomes one .eml file (0600, in
// a 0700 directory), the same message a server would get, and one log
// line says where.
func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "gatehouse", "outbox")
	e := newEnv(t, Config{Outbox: dir})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the outbox exists before any message: %v", err)
	}
	e.send(t, "alice@example.com", MagicLink, magicData)
	e.send(t, "bob@example.com", Activation, activationData)
	e.m.deliverDue(context.Background())

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("outbox %v, mode %v; want 0700", err, fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d files in the outbox, want 2", len(entries))
	}
	logged := e.logs.lines("written to the outbox")
	if len(logged) != 2 {
		t.Fatalf("log lines %v", logged)
	}
	for _, en := range entries {
		path := filepath.Join(dir, en.Name())
		fi, _ := en.Info()
		if !strings.HasSuffix(en.Name(), ".eml") || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want a 0600 .eml file", en.Name(), fi.Mode())
		}
		raw, _ := os.ReadFile(path)
		p := parseMessage(t, string(raw))
		if !strings.Contains(string(raw), "\r\n") {
			t.Error("lines do not end in CRLF (RFC 5322)")
		}
		var line map[string]any
		for _, l := range logged {
			if l["file"] == path {
				line = l
			}
		}
		if line == nil || line["level"] != "INFO" || line["to"] != p.header.Get("To")[1:len(p.header.Get("To"))-1] {
			t.Errorf("no log line names %s with its recipient: %v", path, logged)
		}
		switch {
		case strings.Contains(en.Name(), "-magic_link-"):
			if p.subject(t) != "Your sign-in link for Acme" || !strings.Contains(p.text, "472913") {
				t.Errorf("magic link file: %q %q", p.subject(t), p.text)
			}
		case strings.Contains(en.Name(), "-activation-"):
			if p.subject(t) != "Activate your Acme account" || !strings.Contains(p.html, "Activate my account") {
				t.Errorf("activation file: %q", p.subject(t))
			}
		default:
			t.Errorf("unexpected file %s", en.Name())
		}
	}
	if e.queued(t) != 0 {
		t.Error("written messages are still queued")
	}
}

// TestOutboxFailureRetries: an outbox that cannot be written is a failed
// attempt like a server that is down.
func TestOutboxFailureRetries(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	e := newEnv(t, Config{Outbox: filepath.Join(blocker, "outbox")})
	e.send(t, "alice@example.com", RegistrationWelcome, nil)
	e.m.deliverDue(context.Background())
	if e.m.Stats.Failed.Load() != 1 || e.queued(t) != 1 {
		t.Fatalf("failed %d queued %d", e.m.Stats.Failed.Load(), e.queued(t))
	}
}

// TestSendRefuses: what could inject headers, mislead or break a
// message is refused by Send, and nothing is queued.
func TestSendRefuses(t *testing.T) {
	e := newEnv(t, Config{Outbox: t.TempDir()})
	link := "https://auth.acme.example/a?t=1"
	for _, tc := range []struct {
		name string
		msg  Message
		want string
	}{
		{"CRLF in the recipient", Message{To: "alice@example.com\r\nBcc: eve@evil.example", Template: Activation, Data: map[string]any{"link": link}}, "control character"},
		{"LF in the recipient", Message{To: "alice@example.com\nBcc: eve@evil.example", Template: Activation, Data: map[string]any{"link": link}}, "control character"},
		{"two recipients", Message{To: "alice@example.com, eve@evil.example", Template: Activation, Data: map[string]any{"link": link}}, "not a mail address"},
		{"display name", Message{To: "Alice <alice@example.com>", Template: Activation, Data: map[string]any{"link": link}}, "bare address"},
		{"empty recipient", Message{To: "", Template: Activation, Data: map[string]any{"link": link}}, "empty"},
		{"encoded CRLF in a name", Message{To: "=?utf-8?q?a=0D=0ABcc:_e@evil.example?= <alice@example.com>", Template: Activation, Data: map[string]any{"link": link}}, "recipient"},
		{"unknown template", Message{To: "alice@example.com", Template: "newsletter"}, `no message template "newsletter"`},
		{"no link", Message{To: "alice@example.com", Template: PasswordReset}, `needs the value "link"`},
		{"no code", Message{To: "alice@example.com", Template: MagicLink, Data: map[string]any{"link": link}}, `needs the value "code"`},
		{"relative link", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": "/activate?t=1"}}, "absolute http(s) URL"},
		{"javascript link", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": "javascript:alert(1)"}}, "absolute http(s) URL"},
		{"link with credentials", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": "https://a:b@auth.acme.example/"}}, "absolute http(s) URL"},
		{"CRLF in a subject value", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": link, "site": "Acme\r\nBcc: eve@evil.example"}}, "control character"},
		{"CRLF in the username", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": link, "username": "alice\r\nBcc: eve@evil.example"}}, "control character"},
		{"bidi override in the client name", Message{To: "alice@example.com", Template: MagicLink, Data: map[string]any{"link": link, "code": "1", "client_name": "\u202egnp.exe"}}, "control character"},
		{"huge value", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": link, "name": strings.Repeat("a", 5000)}}, "longer than"},
		{"link not a string", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": 42}}, "absolute http(s) URL"},
		{"unsupported type", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": link, "name": []string{"a"}}}, "[]string"},
		{"invalid UTF-8", Message{To: "alice@example.com", Template: Activation, Data: map[string]any{"link": link, "name": "\xff"}}, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.m.Send(context.Background(), tc.msg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Send: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if e.queued(t) != 0 || e.m.Stats.Queued.Load() != 0 {
		t.Fatalf("%d refused messages were queued", e.queued(t))
	}
}

// TestHTMLEscapesData: markup in values a user controls (a name, a
// client name) is text in the HTML part.
func TestHTMLEscapesData(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Outbox: dir})
	e.send(t, "alice@example.com", MagicLink, map[string]any{"link": "https://auth.acme.example/m?t=1", "code": "<b>1</b>",
		"name": "<script>alert(1)</script>", "client_name": `"><img src=x onerror=alert(1)>`, "expires": time.Hour})
	e.m.deliverDue(context.Background())
	entries, _ := os.ReadDir(dir)
	raw, _ := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	p := parseMessage(t, string(raw))
	for _, bad := range []string{"<script>", "<img", "<b>1</b>"} {
		if strings.Contains(p.html, bad) {
			t.Errorf("HTML part holds %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;", "1 hour"} {
		if !strings.Contains(p.html, want) {
			t.Errorf("HTML part lacks %q", want)
		}
	}
}
