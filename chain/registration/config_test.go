package registration_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// Chains in which accounts could stay inactive for ever, or be
// activated without proof, are refused when built.
func TestChainPlacement(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	build := func(mods []chain.ModuleConfig) error {
		o := v.opt
		o.Issuer = v.srv.URL
		_, err := chain.New(chain.Config{Modules: mods}, o)
		return err
	}
	edit := func(activation string, fn func(m []chain.ModuleConfig) []chain.ModuleConfig) []chain.ModuleConfig {
		return fn(signupChain(activation))
	}
	for _, c := range []struct {
		name string
		mods []chain.ModuleConfig
		want string
	}{
		{"registration after another", edit(`{}`, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[1].After = []string{"Sign in"}
			m[2].After = []string{"Sign in"}
			return m
		}), "a registration module makes a new account, so it is a start module: remove `after Sign in`"},
		{"no activation after registration", edit(`{}`, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[2].After = []string{"Sign in"}
			return m
		}), "no activation module comes after \"Create an account\": add `after Create an account` to \"Activate\""},
		{"welcome on registration with activation", edit(`{}`, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[1].Settings = []byte(`{"welcome": true}`)
			return m
		}), `set welcome on "Activate"`},
		{"activation shown only when needed", edit(`{}`, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[2].ShowOnlyWhenNeeded = true
			return m
		}), "cannot be show_only_when_needed"},
		{"activation level granted before", edit(`{"activation_level": "1"}`, func(m []chain.ModuleConfig) []chain.ModuleConfig { return m }),
			`activation_level "1" is granted by module "Sign in", which comes before "Activate"`},
		{"activation level granted by a password module elsewhere", edit(`{"activation_level": "1"}`, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[1].Levels = []string{"0"}
			m[2].After = []string{"Create an account"}
			return m
		}), `activation_level "1" is granted by module "Sign in", a password module, which proves nothing about an address`},
		{"activation level granted by nobody", edit(`{"activation_level": "verified"}`, func(m []chain.ModuleConfig) []chain.ModuleConfig { return m }),
			`activation_level "verified" is granted by no module`},
		{"link_ttl too long", edit(`{"link_ttl": "30d"}`, func(m []chain.ModuleConfig) []chain.ModuleConfig { return m }), "link_ttl must be between 1m and 7d"},
		{"open and domains", edit(``, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[1].Settings = []byte(`{"open": true, "email_domains": ["acme.example"]}`)
			return m
		}), "leave out one of the two"},
		{"closed", edit(``, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[1].Settings = []byte(`{"open": false}`)
			return m
		}), "lets nobody sign up"},
		{"bad domain", edit(``, func(m []chain.ModuleConfig) []chain.ModuleConfig {
			m[1].Settings = []byte(`{"email_domains": ["acme.example", "ac me.example"]}`)
			return m
		}), `email_domains: "ac me.example" is not a domain name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := build(c.mods); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	// A disabled activation module leaves accounts active at once.
	mods := signupChain(`{}`)
	mods[2].Disabled = true
	mods[2].After = []string{"Sign in"}
	if err := build(mods); err != nil {
		t.Fatal(err)
	}
}

// Any module granting the activation level activates: here a mailed
// link of another kind, asked for by the client's acr_values.
func TestActivationLevelReachedByAnotherModule(t *testing.T) {
	mods := append(signupChain(`{"activation_level": "verified"}`),
		chain.ModuleConfig{Name: "Email", Kind: "test-mail", Levels: []string{"verified"}, After: []string{"Sign in", "Create an account"}, ShowOnlyWhenNeeded: true})
	v := newEnv(t, mods)
	b := v.browser()
	_, page := v.get(b, "/start?acr=verified")
	page = v.open(b, page, "Create an account", "Create an account")
	_, page = v.post(b, "/login", form(page, "username", "kim", "email", "kim@example.com", "password", strong, "password_confirm", strong))
	if !strings.Contains(page, "Choose how to continue") {
		t.Fatalf("after sign-up:\n%s", page)
	}
	_, page = v.choose(b, page, "Email")
	_, page = v.post(b, "/login", form(page))
	m := v.lastMail()
	if m.To != "kim@example.com" || m.Template != "test-link" {
		t.Fatalf("mail %+v", m)
	}
	u := v.user("kim")
	st, body := v.useLink(b, m.Data["url"].(string))
	if body != v.done(u.Subject, "pwd", "otp", "mfa") {
		t.Fatalf("link: %d %s", st, body)
	}
	if v.user("kim").Inactive {
		t.Fatal("reaching the activation level did not activate")
	}
	if ev := v.event("account_activated"); ev == nil || ev["reason"] != "level verified reached" || ev["module"] != "Activate" {
		t.Fatalf("audit %v", ev)
	}
}

// The admin action activates by hand, once.
func TestActivateByHand(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	v.signUp(v.browser(), "lou", "lou@example.com")
	ctx := context.Background()
	if acts := v.e.Actions(); len(acts) != 1 || acts[0].Module != "Activate" || acts[0].Name != "activate" {
		t.Fatalf("actions %+v", acts)
	}
	res, err := v.e.Act(ctx, "Activate", "activate", v.user("lou"))
	if err != nil || res.Message != "lou activated" || v.user("lou").Inactive {
		t.Fatalf("act: %+v %v", res, err)
	}
	if ev := v.event("account_activated"); ev == nil || ev["reason"] != "by an administrator" {
		t.Fatalf("audit %v", ev)
	}
	if res, err := v.e.Act(ctx, "Activate", "activate", v.user("lou")); err != nil || res.Message != "lou was active already" {
		t.Fatalf("again: %+v %v", res, err)
	}
	// An account whose address another claimed cannot be.
	v.signUp(v.browser(), "mo", "alice@example.com")
	if _, err := v.e.Act(ctx, "Activate", "activate", v.user("mo")); err == nil || !strings.Contains(err.Error(), "another account has the address") {
		t.Fatalf("taken address: %v", err)
	}
}

// Password forgotten proves the address as an activation link does: an
// account awaiting activation that resets its password is activated
// (and signed in), the audit trail saying why.
func TestPasswordResetActivates(t *testing.T) {
	mods := append(signupChain(`{}`), chain.ModuleConfig{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}})
	v := newEnv(t, mods)
	v.signUp(v.browser(), "rose", "rose@example.com") // never activated
	b := v.browser()
	_, page := v.get(b, "/start")
	page = v.open(b, page, "Reset", "Forgot password?")
	if _, page = v.post(b, "/login", form(page, "login", "rose@example.com")); !strings.Contains(page, "Check your mail") {
		t.Fatalf("after asking:\n%s", page)
	}
	m := v.lastMail()
	if m.To != "rose@example.com" || m.Template != "password_reset" {
		t.Fatalf("mail %+v", m)
	}
	st, page := v.useLink(b, m.Data["link"].(string))
	if st != http.StatusOK || !strings.Contains(page, `name="confirm"`) {
		t.Fatalf("after the link: %d\n%s", st, page)
	}
	const fresh = "copper lantern drifts 41 miles"
	u := v.user("rose")
	if _, body := v.post(b, "/login", form(page, "password", fresh, "confirm", fresh)); !strings.HasPrefix(body, v.done(u.Subject, "otp")) {
		t.Fatalf("new password: %s", body)
	}
	if u = v.user("rose"); u.Inactive || !u.EmailVerified {
		t.Fatalf("after the reset %+v", u)
	}
	if ev := v.event("account_activated"); ev == nil || ev["user"] != "rose" || ev["reason"] != "address verified" {
		t.Fatalf("audit %v", ev)
	}
}
