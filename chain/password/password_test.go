package password

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/users"
)

func setup(t *testing.T) (*Module, *users.Directory, *memstore.Store, users.User) {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	dir := users.New(st, nil)
	alice, err := dir.Create(context.Background(), users.User{Username: "alice", Email: "alice@example.com"}, "right")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(chain.Deps{Users: dir}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Module), dir, st, alice
}

func TestRegistered(t *testing.T) {
	if !slices.Contains(chain.Kinds(), "password") {
		t.Fatalf("kinds %v lack password", chain.Kinds())
	}
	if err := chain.CheckSettings("password", json.RawMessage(`{"rounds": 3}`)); err == nil || !strings.Contains(err.Error(), "rounds") {
		t.Fatalf("unknown setting: %v", err)
	}
	if err := chain.CheckSettings("password", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("empty settings: %v", err)
	}
	if _, err := New(chain.Deps{}, Settings{}); err == nil {
		t.Fatal("built without a user directory")
	}
}

func TestVerify(t *testing.T) {
	m, dir, _, alice := setup(t)
	ctx := context.Background()
	off, _ := dir.Create(ctx, users.User{Username: "off"}, "right")
	dir.Update(ctx, off.Subject, func(u *users.User) error { u.Disabled = true; return nil })
	a := &chain.Attempt{}
	verify := func(login, pw string) (string, error) {
		id, err := m.Verify(ctx, a, url.Values{"username": {login}, "password": {pw}})
		if err == nil && !slices.Equal(id.AMR, []string{"pwd"}) {
			t.Fatalf("amr %v", id.AMR)
		}
		return id.Subject, err
	}
	for _, login := range []string{"alice", "Alice", "alice@example.com"} {
		if sub, err := verify(login, "right"); err != nil || sub != alice.Subject {
			t.Fatalf("Verify(%q) = %q, %v", login, sub, err)
		}
	}
	for _, c := range []struct{ login, pw, msg string }{
		{"alice", "wrong", "Wrong username or password."},
		{"nobody", "right", "Wrong username or password."},
		{"off", "right", "Wrong username or password."},
		{"", "right", "Enter your username and password."},
		{"alice", "", "Enter your username and password."},
		{strings.Repeat("a", 1025), "right", "Username or password is too long."},
		{"alice", strings.Repeat("a", 1025), "Username or password is too long."},
		{"ali\xffce", "right", "Username or password is too long."},
	} {
		sub, err := verify(c.login, c.pw)
		rej, ok := chain.IsRejection(err)
		if !ok || rej.Message != c.msg || sub != "" {
			t.Errorf("Verify(%.20q, %.20q) = %q, %v; want rejection %q", c.login, c.pw, sub, err, c.msg)
		}
	}
	// The longest accepted input still reaches the directory.
	if _, err := verify(strings.Repeat("a", 1024), strings.Repeat("a", 1024)); err == nil || err.Error() != "Wrong username or password." {
		t.Fatalf("1024-byte fields: %v", err)
	}
}

func TestVerifyStoreFailureIsNotARejection(t *testing.T) {
	m, _, st, _ := setup(t)
	st.Close()
	_, err := m.Verify(context.Background(), &chain.Attempt{}, url.Values{"username": {"alice"}, "password": {"right"}})
	if err == nil {
		t.Fatal("no error with the store closed")
	}
	if _, ok := chain.IsRejection(err); ok {
		t.Fatalf("a technical failure shown as a rejection: %v", err)
	}
}

func TestPrompt(t *testing.T) {
	m, _, _, alice := setup(t)
	ctx := context.Background()
	field := func(p chain.Prompt, name string) chain.Field {
		t.Helper()
		for _, f := range p.Fields {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("prompt has no field %q: %+v", name, p.Fields)
		return chain.Field{}
	}
	p, err := m.Prompt(ctx, &chain.Attempt{})
	if err != nil {
		t.Fatal(err)
	}
	u, pw := field(p, "username"), field(p, "password")
	if u.Value != "" || !u.Autofocus || pw.Autofocus || pw.Type != "password" || pw.Autocomplete != "current-password" || u.Autocomplete != "username" {
		t.Fatalf("fresh prompt %+v", p)
	}
	// An identified user's name is filled in (not the hint).
	var a chain.Attempt
	if err := jsonRoundTrip(&a, alice.Subject, "someone-else"); err != nil {
		t.Fatal(err)
	}
	p, _ = m.Prompt(ctx, &a)
	if u := field(p, "username"); u.Value != "alice" || u.Autofocus || !field(p, "password").Autofocus {
		t.Fatalf("identified prompt %+v", p)
	}
	// An unknown subject falls back to the hint.
	jsonRoundTrip(&a, "gone", "hint@example.com")
	p, _ = m.Prompt(ctx, &a)
	if u := field(p, "username"); u.Value != "hint@example.com" {
		t.Fatalf("hint prompt %+v", p)
	}
}

// jsonRoundTrip fills a with subject and login hint the way the engine
// stores attempts (the request part is unexported).
func jsonRoundTrip(a *chain.Attempt, subject, hint string) error {
	b, err := json.Marshal(map[string]any{"id": "x", "sub": subject, "req": map[string]any{"return_to": "/", "login_hint": hint}})
	if err != nil {
		return err
	}
	*a = chain.Attempt{}
	return json.Unmarshal(b, a)
}
