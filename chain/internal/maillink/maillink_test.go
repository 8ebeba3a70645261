package maillink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/chain/internal/maillink"
	_ "github.com/gatehouse-idp/gatehouse/chain/magic_link"
	_ "github.com/gatehouse-idp/gatehouse/chain/password_reset"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// realMailer is the mail package behind the chain's Mailer, as
// caddymodule wires it.
type realMailer struct{ m *mail.Mailer }

func (r realMailer) Send(ctx context.Context, m chain.Mail) error {
	return r.m.Send(ctx, mail.Message{To: m.To, Template: m.Template, Data: m.Data})
}

type fixture struct {
	s      maillink.Sender
	users  *users.Directory
	mailer *mail.Mailer
	outbox string
	now    time.Time
}

func setup(t *testing.T) *fixture {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	f := &fixture{users: users.New(st, nil), outbox: t.TempDir(), now: time.Now()}
	var err error
	f.mailer, err = mail.New(mail.Config{Store: st, From: "Acme <noreply@acme.example>", Outbox: f.outbox})
	if err != nil {
		t.Fatal(err)
	}
	f.s = maillink.Sender{Template: mail.MagicLink, D: chain.Deps{Name: "Link", Store: store.WithPrefix(st, "mod:Link:"), Users: f.users,
		Mailer: realMailer{f.mailer}, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }}}
	return f
}

func (f *fixture) user(t *testing.T, u users.User) users.User {
	t.Helper()
	u, err := f.users.Create(context.Background(), u, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) queued(t *testing.T) int {
	t.Helper()
	n, err := f.mailer.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) link() chain.Link {
	return chain.Link{URL: "https://idp.example/login/m/Link/mail?t=x", Code: "12345678", Expires: f.now.Add(10 * time.Minute)}
}

// Whom a link goes to: the identified user, else the account the form
// names; nobody (and no error) for an unknown, disabled or unmailable
// account.
func TestSendRecipients(t *testing.T) {
	f := setup(t)
	alice := f.user(t, users.User{Username: "alice", Email: "alice@example.com"})
	f.user(t, users.User{Username: "off", Email: "off@example.com", Disabled: true})
	f.user(t, users.User{Username: "nomail"})
	f.user(t, users.User{Username: "odd", Email: `"a b"@example.com`})
	cases := []struct {
		name    string
		subject string
		login   string
		want    string
	}{
		{"identified", alice.Subject, "", "alice"},
		{"identified, the form ignored", alice.Subject, "off", "alice"},
		{"username", "", "alice", "alice"},
		{"email, spaced", "", "  alice@example.com ", "alice"},
		{"unknown", "", "nobody", ""},
		{"disabled", "", "off", ""},
		{"no address", "", "nomail", ""},
		{"an address mail refuses", "", "odd", ""},
		{"too long", "", strings.Repeat("a", 400), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.queued(t)
			a := &chain.Attempt{ID: "att-" + c.name, Subject: c.subject}
			u, err := f.s.Send(context.Background(), a, url.Values{maillink.Field: {c.login}}, f.link(), map[string]any{"code": "12345678"})
			if err != nil || u.Username != c.want {
				t.Fatalf("sent to %q (%v), want %q", u.Username, err, c.want)
			}
			if got := f.queued(t) - before; (got == 1) != (c.want != "") {
				t.Fatalf("%d mails queued", got)
			}
		})
	}
	_, err := f.s.Send(context.Background(), &chain.Attempt{ID: "empty"}, url.Values{}, f.link(), nil)
	if _, ok := chain.IsRejection(err); !ok {
		t.Fatalf("empty form: %v", err)
	}
}

// A name the mail refuses does not keep the person from their link: the
// message goes without the names.
func TestSendDropsNamesTheMailRefuses(t *testing.T) {
	f := setup(t)
	f.user(t, users.User{Username: "alice", Email: "alice@example.com", Name: "Alice\u202eevil"})
	a := &chain.Attempt{ID: "a1"}
	a.Req.Client = "Wiki"
	u, err := f.s.Send(context.Background(), a, url.Values{maillink.Field: {"alice"}}, f.link(), map[string]any{"code": "12345678"})
	if err != nil || u.Username != "alice" {
		t.Fatalf("%v %v", u, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.mailer.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var eml []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && eml == nil; time.Sleep(20 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(f.outbox, "*.eml"))
		if len(files) == 1 {
			eml, _ = os.ReadFile(files[0])
		}
	}
	text := string(eml)
	if !strings.Contains(text, "12345678") || strings.Contains(text, "Alice") || strings.Contains(text, "Wiki") {
		t.Fatalf("message:\n%s", text)
	}
}

// The link's return marks the address verified — only the address the
// mail went to, only for the user it went to, once.
func TestProvedMarksTheAddressVerified(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	alice := f.user(t, users.User{Username: "alice", Email: "alice@example.com"})
	bob := f.user(t, users.User{Username: "bob", Email: "bob@example.com"})
	send := func(id string) *chain.Attempt {
		a := &chain.Attempt{ID: id}
		if _, err := f.s.Send(ctx, a, url.Values{maillink.Field: {"alice"}}, f.link(), map[string]any{"code": "1"}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// Another subject than the mail's: nothing changes.
	a := send("a1")
	if u, err := f.s.Proved(ctx, a, bob.Subject); err != nil || u.EmailVerified {
		t.Fatalf("bob: %+v %v", u, err)
	}
	// The address changed since the mail: not verified.
	a = send("a2")
	if _, err := f.users.Update(ctx, alice.Subject, func(u *users.User) error { u.Email = "new@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if u, err := f.s.Proved(ctx, a, alice.Subject); err != nil || u.EmailVerified {
		t.Fatalf("changed address: %+v %v", u, err)
	}
	if _, err := f.users.Update(ctx, alice.Subject, func(u *users.User) error { u.Email = "alice@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	// The same address: verified.
	a = send("a3")
	if u, err := f.s.Proved(ctx, a, alice.Subject); err != nil || !u.EmailVerified {
		t.Fatalf("same address: %+v %v", u, err)
	}
	// No mail noted for the attempt (never sent, or expired): nothing.
	if _, err := f.users.Update(ctx, alice.Subject, func(u *users.User) error { u.EmailVerified = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if u, err := f.s.Proved(ctx, a, alice.Subject); err != nil || u.EmailVerified {
		t.Fatalf("again: %+v %v", u, err)
	}
}

// The settings of both kinds, as `caddy adapt` checks them.
func TestLinkSettings(t *testing.T) {
	for _, kind := range []string{"password_reset", "magic_link"} {
		for _, c := range []struct {
			name string
			args []string
			ok   bool
		}{
			{"link_ttl", []string{"15m"}, true},
			{"link_ttl", []string{"1h"}, true},
			{"link_ttl", []string{"30s"}, false},
			{"link_ttl", []string{"2h"}, false},
			{"link_ttl", []string{"1d"}, false},
			{"link_ttl", []string{"soon"}, false},
			{"link_ttl", []string{"5m", "10m"}, false},
			{"other_browser", []string{"refuse"}, true},
			{"other_browser", []string{"continue"}, true},
			{"other_browser", []string{"Continue"}, false},
			{"other_browser", nil, false},
			{"code", []string{"true"}, false},
		} {
			v, err := chain.SettingValue(kind, c.name, c.args)
			if err == nil {
				raw, _ := json.Marshal(map[string]json.RawMessage{c.name: v})
				err = chain.CheckSettings(kind, raw)
			}
			if (err == nil) != c.ok {
				t.Errorf("%s: %s %v: %v", kind, c.name, c.args, err)
			}
		}
	}
}

// FuzzLinkSettings: no settings object makes decoding panic, and what is
// accepted is within bounds.
func FuzzLinkSettings(f *testing.F) {
	for _, s := range []string{`{}`, `{"link_ttl": "15m"}`, `{"link_ttl": 60000000000}`, `{"other_browser": "continue"}`,
		`{"link_ttl": "-5m"}`, `{"other_browser": 1}`, `null`, `[]`, `{"link_ttl": "99999999999h"}`} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, magic bool) {
		kind := "password_reset"
		if magic {
			kind = "magic_link"
		}
		if chain.CheckSettings(kind, json.RawMessage(raw)) != nil {
			return
		}
		var s struct {
			LinkTTL      chain.Duration `json:"link_ttl"`
			OtherBrowser string         `json:"other_browser"`
		}
		// The engine trims what bytes.TrimSpace does (form feeds too).
		if b := bytes.TrimSpace([]byte(raw)); len(b) > 0 && json.Unmarshal(b, &s) != nil {
			t.Fatalf("accepted %q, which does not decode", raw)
		}
		if d := time.Duration(s.LinkTTL); d != 0 && (d < maillink.MinLinkTTL || d > maillink.MaxLinkTTL) {
			t.Fatalf("accepted link_ttl %s", d)
		}
		if s.OtherBrowser != "" && s.OtherBrowser != maillink.OtherBrowserRefuse && s.OtherBrowser != maillink.OtherBrowserContinue {
			t.Fatalf("accepted other_browser %q", s.OtherBrowser)
		}
	})
}
