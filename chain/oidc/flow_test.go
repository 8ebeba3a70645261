package oidc_test

import (
	"context"
	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/registration"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/users"
)

// A first sign-in creates an account linked to the remote identity
// (accounts create); the next one signs in to the same account.
func TestJustInTimeAccount(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create"})
	ctx := context.Background()
	b := v.browser()
	claims := map[string]any{"sub": "corp-7", "email": "carol@corp.example", "email_verified": true, "preferred_username": "carol", "name": "Carol C", "amr": []string{"pwd", "mfa", "made-up"}}
	st, body := v.viaCorp(b, "", claims)
	u, err := v.users.LookupRemote(ctx, v.op.URL, "corp-7")
	if err != nil {
		t.Fatalf("no account linked: %v (%d %s)", err, st, body)
	}
	if body != v.done(u.Subject, "pwd", "mfa") {
		t.Fatalf("sign-in: %d %s", st, body)
	}
	if u.Username != "carol" || u.Email != "carol@corp.example" || !u.EmailVerified || u.Inactive || u.Name != "Carol C" || u.PasswordHash != "" {
		t.Fatalf("account %+v", u)
	}
	if r := u.Remotes[0]; r.Module != "Corp" || r.Label != "carol@corp.example" {
		t.Fatalf("link %+v", r)
	}
	if !strings.Contains(v.trail.String(), `"event":"account_created"`) || !strings.Contains(v.trail.String(), `"event":"identity_linked"`) {
		t.Fatalf("audit trail:\n%s", v.trail)
	}
	// The next sign-in is the same account; the upstream's claims are
	// not read again into it.
	b = v.browser()
	claims["email"] = "other@corp.example"
	if st, body := v.viaCorp(b, "", claims); body != v.done(u.Subject, "pwd", "mfa") {
		t.Fatalf("second sign-in: %d %s", st, body)
	}
	if all, _ := v.users.List(ctx); len(all) != 2 {
		t.Fatalf("%d accounts", len(all))
	}
	// A second person whose preferred username is taken gets another.
	b = v.browser()
	v.viaCorp(b, "", map[string]any{"sub": "corp-8", "preferred_username": "alice"})
	u2, err := v.users.LookupRemote(ctx, v.op.URL, "corp-8")
	if err != nil || u2.Username == "alice" || !strings.HasPrefix(u2.Username, "alice-") || u2.Email != "" {
		t.Fatalf("second account %+v %v", u2, err)
	}
}

// With accounts link_only (or registration without a registration
// module, the default), an identity no account has is refused.
func TestNoAccountWithoutCreate(t *testing.T) {
	for _, accounts := range []string{"link_only", ""} {
		v := newEnv(t, map[string]any{"accounts": accounts})
		b := v.browser()
		st, body := v.viaCorp(b, "", map[string]any{"sub": "corp-9", "email": "dan@corp.example", "email_verified": true})
		if st != http.StatusForbidden || !strings.Contains(body, "not known here") || v.session(b) != nil {
			t.Fatalf("accounts %q: %d %s", accounts, st, body)
		}
		if all, _ := v.users.List(context.Background()); len(all) != 1 {
			t.Fatalf("accounts %q: an account was made", accounts)
		}
	}
}

// A remote identity whose verified address is an existing account's
// never signs in as that account: the person signs in to it first (the
// whole chain), then the identity is linked. Signing in to another
// account links nothing. An unverified address names nobody.
func TestNoTakeoverByEmail(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create"})
	ctx := context.Background()
	mallory := map[string]any{"sub": "corp-m", "email": "alice@example.com", "email_verified": true}

	b := v.browser()
	st, page := v.viaCorp(b, "", mallory)
	if st != http.StatusOK || !strings.Contains(alert(page), "already has the address alice@example.com. Sign in to it once to link your Corp sign-in") || v.session(b) != nil {
		t.Fatalf("address of an account: %d %q\n%s", st, alert(page), page)
	}
	if _, err := v.users.LookupRemote(ctx, v.op.URL, "corp-m"); err == nil {
		t.Fatal("linked without proof")
	}
	// A wrong password links nothing.
	if st, _ := v.password(b, page, "alice", "wrong"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", st)
	}
	// Someone else's account (bob proves bob): nothing linked to either.
	bob, _ := v.users.Create(ctx, usersUser("bob"), "bob-pw")
	_, page = v.get(b, v.srv.URL+"/start")
	if _, body := v.password(b, page, "bob", "bob-pw"); body != v.done(bob.Subject, "pwd") {
		t.Fatalf("bob: %s", body)
	}
	if _, err := v.users.LookupRemote(ctx, v.op.URL, "corp-m"); err == nil {
		t.Fatal("linked to the wrong account")
	}

	// Alice proves her account in the attempt: now it is linked.
	b = v.browser()
	_, page = v.viaCorp(b, "", mallory)
	if _, body := v.password(b, page, "alice", "alice-pw"); body != v.done(v.alice.Subject, "pwd") {
		t.Fatalf("proof: %s", body)
	}
	if u, err := v.users.LookupRemote(ctx, v.op.URL, "corp-m"); err != nil || u.Subject != v.alice.Subject {
		t.Fatalf("not linked after proof: %v", err)
	}
	if !strings.Contains(v.trail.String(), `"reason":"proven by signing in to the account"`) {
		t.Fatalf("trail:\n%s", v.trail)
	}
	// From now on the remote sign-in is alice's.
	b = v.browser()
	if _, body := v.viaCorp(b, "", mallory); strings.TrimSpace(body) != v.done(v.alice.Subject) {
		t.Fatalf("linked sign-in: %s", body)
	}

	// An unverified address names nobody: a new account, without it.
	b = v.browser()
	v.viaCorp(b, "", map[string]any{"sub": "corp-u", "email": "bob@example.com", "preferred_username": "bobby"})
	u, err := v.users.LookupRemote(ctx, v.op.URL, "corp-u")
	if err != nil || u.Subject == bob.Subject || u.Email != "" {
		t.Fatalf("unverified address: %+v %v", u, err)
	}
}

// The upstream's acr reaches the level acr_levels maps it to: a
// sign-in asking level 2 asks the provider for urn:mfa, and only a token
// carrying it reaches 2.
func TestUpstreamACRMapsToLevel(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create", "acr_values": []string{"urn:basic"}})
	b := v.browser()
	st, body := v.viaCorp(b, "2", map[string]any{"sub": "corp-1", "acr": "urn:mfa"})
	if !strings.HasPrefix(body, "DONE ") {
		t.Fatalf("acr 2: %d %s", st, body)
	}
	if got := v.op.lastAuth.Get("acr_values"); got != "urn:mfa urn:basic" {
		t.Fatalf("acr_values sent: %q", got)
	}
	o, err := v.e.Evaluate(context.Background(), v.session(b).Subject, v.session(b).Passed, []string{"2"}, v.clk.now().Add(-1))
	if err != nil || !o.Satisfied || o.ACR != "2" {
		t.Fatalf("outcome %+v %v", o, err)
	}
	// Another acr reaches 1 only: the session does not satisfy 2.
	b = v.browser()
	v.viaCorp(b, "", map[string]any{"sub": "corp-1", "acr": "urn:basic"})
	s := v.session(b)
	if s == nil || len(s.Passed) != 1 || strings.Join(s.Passed[0].Levels, " ") != "1" {
		t.Fatalf("levels %+v", s)
	}
	if o, _ := v.e.Evaluate(context.Background(), s.Subject, s.Passed, []string{"2"}, v.clk.now().Add(-1)); o.Satisfied {
		t.Fatal("urn:basic satisfied level 2")
	}
}

// Sign-ins that do not verify are refused, audited, and make no
// session: a token for another client, from another issuer, expired,
// with another nonce, unsigned; an error from the provider; a code
// replayed.
func TestRefusedAnswers(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create"})
	cases := map[string]func(map[string]any){
		"other audience": func(c map[string]any) { c["aud"] = "someone-else" },
		"other issuer":   func(c map[string]any) { c["iss"] = "https://evil.example" },
		"expired":        func(c map[string]any) { c["exp"] = v.clk.now().Add(-time.Minute).Unix() },
		"other nonce":    func(c map[string]any) { c["nonce"] = "not-yours" },
		"no nonce":       func(c map[string]any) { delete(c, "nonce") },
		"no sub":         func(c map[string]any) { delete(c, "sub") },
		"sub not string": func(c map[string]any) { c["sub"] = 42 },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			b := v.browser()
			v.op.mu.Lock()
			v.op.tamper = tamper
			v.op.mu.Unlock()
			st, body := v.viaCorp(b, "", map[string]any{"sub": "corp-x"})
			if st != http.StatusUnauthorized || v.session(b) != nil || alert(body) == "" {
				t.Fatalf("%d %q", st, alert(body))
			}
		})
	}
	if n := strings.Count(v.trail.String(), `"event":"login_failed"`); n < len(cases) {
		t.Fatalf("%d refusals audited:\n%s", n, v.trail)
	}
}

// allowed_domains admits verified addresses at those domains only;
// allowed_groups members of those groups only.
func TestAllowedDomainsAndGroups(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create", "allowed_domains": []string{"corp.example", "*.corp.example"}, "allowed_groups": []string{"staff"}})
	for _, tc := range []struct {
		claims map[string]any
		ok     bool
	}{
		{map[string]any{"sub": "a", "email": "a@corp.example", "email_verified": true, "groups": []string{"staff"}}, true},
		{map[string]any{"sub": "b", "email": "b@eu.corp.example", "email_verified": true, "groups": "staff"}, true},
		{map[string]any{"sub": "c", "email": "c@corp.example", "groups": []string{"staff"}}, false},                              // unverified
		{map[string]any{"sub": "d", "email": "d@corp.example.evil", "email_verified": true, "groups": []string{"staff"}}, false}, // not the domain
		{map[string]any{"sub": "e", "email": "e@corp.example", "email_verified": true, "groups": []string{"guests"}}, false},
		{map[string]any{"sub": "f", "email": "f@corp.example", "email_verified": true}, false},
	} {
		b := v.browser()
		st, body := v.viaCorp(b, "", tc.claims)
		if got := strings.HasPrefix(body, "DONE "); got != tc.ok {
			t.Fatalf("%v: %d %q", tc.claims, st, alert(body))
		}
	}
}

func usersUser(name string) users.User { return users.User{Username: name} }

// A session that reached level 1 at the provider steps up to 2 through
// the same module: it is offered again, and the provider is asked for
// the acr that reaches 2.
func TestStepUpThroughTheProvider(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create"})
	b := v.browser()
	if _, body := v.viaCorp(b, "", map[string]any{"sub": "corp-1"}); !strings.HasPrefix(body, "DONE ") {
		t.Fatalf("sign-in: %s", body)
	}
	sub := v.session(b).Subject
	st, body := v.viaCorp(b, "2", map[string]any{"sub": "corp-1", "acr": "urn:mfa"})
	if !strings.HasPrefix(body, "DONE "+sub) || v.op.lastAuth.Get("acr_values") != "urn:mfa" {
		t.Fatalf("step-up: %d %s (acr_values %q)", st, body, v.op.lastAuth.Get("acr_values"))
	}
	s := v.session(b)
	if o, _ := v.e.Evaluate(context.Background(), s.Subject, s.Passed, []string{"2"}, time.Time{}); !o.Satisfied {
		t.Fatalf("level 2 not reached: %+v", s.Passed)
	}
}

// accounts registration (the default) makes accounts when the chain has
// an enabled sign-up module: people may make one anyway.
func TestAccountsFollowRegistration(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		v := newEnv(t, nil, chain.ModuleConfig{Name: "Signup", Kind: "registration", Levels: []string{"1"}, Disabled: disabled})
		_, body := v.viaCorp(v.browser(), "", map[string]any{"sub": "r-1", "email": "r@corp.example", "email_verified": true})
		if made := strings.HasPrefix(body, "DONE "); made == disabled {
			t.Fatalf("sign-up disabled %v: %s", disabled, body)
		}
	}
}

// A session of the account is no proof for linking: the person signs in
// to it again in the sign-in that links.
func TestProofIsAFreshSignIn(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create"})
	b := v.browser()
	_, page := v.get(b, v.srv.URL+"/start")
	v.password(b, page, "alice", "alice-pw")
	v.clk.add(time.Hour)
	v.op.signIn(map[string]any{"sub": "corp-m", "email": "alice@example.com", "email_verified": true})
	_, page = v.get(b, v.srv.URL+"/fresh")
	_, page = v.open(b, page, "Corp")
	_, page = v.post(b, v.srv.URL+"/login", chaintest.Form(page))
	if !strings.Contains(alert(page), "already has the address") {
		t.Fatalf("no proof asked of a signed-in browser:\n%s", page)
	}
	if _, err := v.users.LookupRemote(context.Background(), v.op.URL, "corp-m"); err == nil {
		t.Fatal("linked on the strength of the session")
	}
	if _, body := v.password(b, page, "alice", "alice-pw"); !strings.HasPrefix(body, "DONE "+v.alice.Subject) {
		t.Fatalf("proof: %s", body)
	}
	if u, err := v.users.LookupRemote(context.Background(), v.op.URL, "corp-m"); err != nil || u.Subject != v.alice.Subject {
		t.Fatalf("not linked after the fresh sign-in: %v", err)
	}
}
