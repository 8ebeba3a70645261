package provider_test

import (
	"net/http"
	"strings"
	"testing"
)

// Pages name what people know: the issuer's root is a page (signed in
// or not), the account page names each session's browser and the
// applications by name, and a step-up says why more is asked.
func TestNamesPeopleSee(t *testing.T) {
	e := newEnvWith(t, envSetup{chain: keysChain()})
	b := e.browser()
	resp, page := b.get(e.issuer + "/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Sign in to your account") {
		t.Fatalf("root signed out: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := b.get(e.issuer + "/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	e.login(b, authParams("conf"))
	if _, page = b.get(e.issuer + "/"); !strings.Contains(page, "signed in as <strong>alice</strong>") {
		t.Fatalf("root signed in:\n%s", page)
	}
	_, acct := b.get(e.issuer + "/account")
	if !strings.Contains(acct, "applications: Conf App") || !strings.Contains(acct, "Go program at 127.0.0.1") {
		t.Fatalf("account page:\n%s", acct)
	}
	q := authParams("conf")
	q.Set("acr_values", "2")
	_, page = b.get(e.authURL(q))
	if !strings.Contains(page, "You are signed in, but Conf App asks for more than your sign-in so far (level 2).") {
		t.Fatalf("step-up page:\n%s", page)
	}
}
