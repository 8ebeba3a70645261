package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The chain modules' admin actions through the CLI: listed without
// knowing the kinds, run by module and action name; reset-totp is the
// totp modules' "reset". A reset TOTP is asked to be enrolled again.
func TestModuleActionsCLI(t *testing.T) {
	s := newChainSetup(t)
	b := newBrowser(t)
	if _, _, echo := s.visit(t, b, s.app+"/", nil); echo == nil {
		t.Fatal("sign-in failed")
	}
	resp, page := b.get(s.app + "/admin/")
	secret := totpSecretRE.FindStringSubmatch(page)[1]
	b.submitForm(resp.Request.URL.String(), page, url.Values{"code": {totpCode(t, secret, time.Now())}})

	out, err := s.caddy.cli("", "user", "actions")
	if err != nil || !strings.Contains(out, "totp") || !strings.Contains(out, "reset") || !strings.Contains(out, "forgets trusted devices") {
		t.Fatalf("user actions: %v\n%s", err, out)
	}
	out, err = s.caddy.cli("", "user", "action", "alice", "totp", "reset")
	if err != nil || !strings.Contains(out, "TOTP of alice removed") {
		t.Fatalf("user action: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "user", "action", "alice", "totp", "explode"); err == nil || !strings.Contains(out, `no action "explode"`) {
		t.Fatalf("unknown action: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "user", "reset-totp", "alice"); err != nil || !strings.Contains(out, "TOTP of alice removed") {
		t.Fatalf("reset-totp: %v\n%s", err, out)
	}
	// A new sign-in at level 2 enrols again.
	b = newBrowser(t)
	s.visit(t, b, s.app+"/", nil)
	if _, page := b.get(s.app + "/admin/"); !strings.Contains(page, `id="totp-secret"`) {
		t.Fatalf("no enrolment after the reset:\n%s", page)
	}
}
