package provider_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// keysChain is a password, then keys (test-keys, an account module) when
// level 2 is asked.
func keysChain() *chain.Config {
	return &chain.Config{Modules: []chain.ModuleConfig{
		{Name: "Password", Kind: "password", Levels: []string{"1"}},
		{Name: "Keys", Kind: "test-keys", Levels: []string{"2"}, After: []string{"Password"}, ShowOnlyWhenNeeded: true},
	}}
}

// The account page lists each account module's part (test-keys: keys,
// a stand-in for passkeys), adds one through the module's own page after
// a recent sign-in, and removes one with a CSRF-checked form.
func TestAccountPageModules(t *testing.T) {
	e := newEnvWith(t, envSetup{chain: keysChain()})
	b := e.browser()
	e.login(b, authParams("conf"))
	_, acct := b.get(e.issuer + "/account")
	addURL := e.issuer + "/account/add?module=Keys"
	if !strings.Contains(acct, "<h2>Keys</h2>") || !strings.Contains(acct, `href="/account/add?module=Keys"`) {
		t.Fatalf("account page:\n%s", acct)
	}
	resp, page := b.get(addURL)
	if !strings.Contains(page, "Add a key") || !strings.Contains(page, `name="key"`) {
		t.Fatalf("add page: %d\n%s", resp.StatusCode, page)
	}
	f := loginForm(page)
	f.Set("key", "k1")
	resp, acct = b.post(resp.Request.URL.String(), f)
	if resp.Request.URL.Path != "/account" || !strings.Contains(acct, "Key k1") {
		t.Fatalf("after adding: %s\n%s", resp.Request.URL, acct)
	}

	// Removing needs the page's CSRF token.
	if resp, _ := b.post(e.issuer+"/account", url.Values{"action": {"remove"}, "module": {"Keys"}, "item": {"k1"}, "csrf": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("remove without the token: %d", resp.StatusCode)
	}
	rm := loginForm(acct)
	rm.Set("action", "remove")
	rm.Set("module", "Keys")
	rm.Set("item", "nope")
	if resp, page := b.post(e.issuer+"/account", rm); resp.StatusCode != http.StatusConflict || !strings.Contains(page, "no such key") {
		t.Fatalf("removing an unknown key: %d\n%s", resp.StatusCode, page)
	}
	rm.Set("item", "k1")
	if resp, acct = b.post(e.issuer+"/account", rm); resp.StatusCode != http.StatusOK || strings.Contains(acct, "Key k1") {
		t.Fatalf("after removing: %d\n%s", resp.StatusCode, acct)
	}
	rm.Set("module", "Password")
	if resp, _ := b.post(e.issuer+"/account", rm); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("removing from a module without a part: %d", resp.StatusCode)
	}

	// An old sign-in signs in again before adding.
	e.clock.Advance(16 * time.Minute)
	resp, page = b.get(addURL)
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("add after 16 minutes asks no new sign-in:\n%s", page)
	}
	if _, page = b.submitLogin(resp, page, alicePassword); !strings.Contains(page, `name="key"`) {
		t.Fatalf("after signing in again:\n%s", page)
	}
	// Without a session: a sign-in first; an unknown module: 404.
	if _, page := e.browser().get(addURL); !strings.Contains(page, `name="password"`) {
		t.Fatalf("add without a session:\n%s", page)
	}
	if resp, _ := b.get(e.issuer + "/account/add?module=Password"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a module without a part: %d", resp.StatusCode)
	}
}
