package chain_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// partial passes as alice with only some of its levels (as a remote
// provider's acr decides) and serves an endpoint of its own.
type partial struct{ levels []string }

func (partial) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: "Partial", Fields: []chain.Field{{Name: "who", Label: "Who", Type: "text"}}}, nil
}

func (m partial) Verify(ctx context.Context, _ *chain.Attempt, f url.Values) (chain.Identity, error) {
	return chain.Identity{Subject: f.Get("who"), AMR: []string{"pwd"}, Levels: m.levels, Ref: "remote-session"}, nil
}

func (partial) Endpoint(path string) http.Handler {
	if path != "ping" {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") })
}

func init() {
	chain.Register("testpartial", func(_ chain.Deps, s struct {
		Levels []string `json:"levels"`
	}) (chain.Module, error) {
		return partial{levels: s.Levels}, nil
	})
}

// A pass reaches the levels the module says, each one it grants (any
// other is a technical failure, never a pass); a level it did not
// reach offers it again for a step-up; its reference is kept with the
// pass in the session.
func TestPassWithSomeLevels(t *testing.T) {
	c := newCEnv(t, []chain.ModuleConfig{{Name: "Partial", Kind: "testpartial", Levels: []string{"1", "2"}, Settings: settings(`{"levels": ["1"]}`)}}, nil)
	b := c.client()
	_, page := get(t, b, c.srv.URL+"/start")
	if _, body := post(t, b, c.srv.URL+"/login", form(page, "who", c.alice.Subject)); !strings.HasPrefix(body, "DONE "+c.alice.Subject) {
		t.Fatalf("pass: %s", body)
	}
	s, err := c.sessions.Load(withJar(b, c.srv.URL))
	if err != nil || len(s.Passed) != 1 || strings.Join(s.Passed[0].Levels, " ") != "1" || s.Passed[0].Ref != "remote-session" {
		t.Fatalf("session %+v %v", s, err)
	}
	if o, _ := c.e.Evaluate(context.Background(), s.Subject, s.Passed, []string{"2"}, time.Time{}); o.Satisfied || o.Done {
		t.Fatalf("level 2: %+v (the module should be offered again)", o)
	}
	// Level 2 asked: the module is offered again.
	_, page = get(t, b, c.srv.URL+"/start?acr=2")
	if !strings.Contains(page, `name="module" value="Partial"`) {
		t.Fatalf("not offered again:\n%s", page)
	}

	bad := newCEnv(t, []chain.ModuleConfig{{Name: "Partial", Kind: "testpartial", Levels: []string{"1"}, Settings: settings(`{"levels": ["9"]}`)}}, nil)
	b = bad.client()
	_, page = get(t, b, bad.srv.URL+"/start")
	if st, body := post(t, b, bad.srv.URL+"/login", form(page, "who", bad.alice.Subject)); st != http.StatusServiceUnavailable || strings.HasPrefix(body, "DONE") {
		t.Fatalf("foreign level: %d %s", st, body)
	}
}

// A module's own endpoints are served below LoginPath/m/<name>/, not
// when it is disabled, and never in place of the engine's own.
func TestModuleEndpoints(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		c := newCEnv(t, []chain.ModuleConfig{mod("Password", "password", []string{"1"}),
			{Name: "Partial", Kind: "testpartial", Levels: []string{"1"}, Disabled: disabled, Settings: settings(`{}`)}}, nil)
		st, body := get(t, c.client(), c.srv.URL+"/login/m/Partial/ping")
		if (st == http.StatusOK && body == "pong") == disabled {
			t.Fatalf("disabled %v: %d %s", disabled, st, body)
		}
		if st, _ := get(t, c.client(), c.srv.URL+"/login/m/Partial/other"); st != http.StatusNotFound {
			t.Fatalf("unknown endpoint: %d", st)
		}
	}
}

// proveLinker asks for proof of alice's account for every identity.
type proveLinker struct{ alice string }

func (l proveLinker) Link(context.Context, *chain.Attempt, chain.Claims) (string, error) {
	return "", &chain.ProveAccount{Subject: l.alice, Message: "Sign in to the account first."}
}

func (proveLinker) Attach(context.Context, string, chain.Claims) error { return nil }

// On the account page a Linker asking for proof of an account is
// refused as another account's identity (the signed-in user is the
// only proof there); at a sign-in it asks for that account's sign-in.
func TestProveAccount(t *testing.T) {
	idp := chaintest.NewIdP()
	defer idp.Close()
	l := &proveLinker{}
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Remote", Kind: "test-remote", Levels: []string{"1"}, Settings: settings(fmt.Sprintf(`{"url": %q, "account": true}`, idp.URL))},
	}, func(o *chain.Options) { o.Linker = l })
	l.alice = c.alice.Subject
	idp.SignIn(chaintest.Claims{Sub: "r-1", Email: "alice@example.com"})
	b := c.client()
	c.passwordIn(b, "alice", "pw")
	_, page := get(t, b, c.srv.URL+"/add?module=Remote")
	if st, _ := post(t, b, c.srv.URL+"/login", form(page)); st != http.StatusConflict {
		t.Fatalf("account page: %d", st)
	}
	k := c.client()
	_, page = get(t, k, c.srv.URL+"/start")
	_, page = c.choose(k, page, "Remote")
	if _, body := post(t, k, c.srv.URL+"/login", form(page)); !strings.Contains(body, "Sign in to the account first.") || strings.HasPrefix(body, "DONE") {
		t.Fatalf("sign-in: %s", body)
	}
}
