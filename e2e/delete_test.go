package e2e

import (
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// An administrator lists every session, deletes a user (their session
// ends, their tokens die, they cannot sign in, the name is free again),
// and deletes a client added with the CLI — not one of the Caddyfile.
func TestDeleteUserAndClient(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	s.addUser(t, "bob", "correct horse battery")
	rp := s.client(t)
	b := newBrowser(t, s.appHost)
	verifier := oauth2.GenerateVerifier()
	q := s.authorize(t, b, rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", "correct horse battery")
	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	s.authorize(t, newBrowser(t, s.appHost), rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "bob", "correct horse battery")

	out, err := s.caddy.cli("", "session", "list")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") || !strings.Contains(out, "Go program 127.0.0.1") {
		t.Fatalf("session list: %v\n%s", err, out)
	}
	out, err = s.caddy.cli("", "user", "delete", "alice")
	if err != nil || !strings.Contains(out, "deleted user alice (1 sessions ended)") {
		t.Fatalf("user delete: %v\n%s", err, out)
	}
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("the deleted user's access token still works")
	}
	if out, _ := s.caddy.cli("", "session", "list"); strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Fatalf("sessions after the delete:\n%s", out)
	}
	if out, _ := s.caddy.cli("", "user", "list"); strings.Contains(out, "alice") {
		t.Fatalf("user list after the delete:\n%s", out)
	}
	nb := newBrowser(t, s.appHost)
	resp, page := nb.get(rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if resp, page = nb.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery"); !strings.Contains(page, `name="password"`) {
		t.Fatalf("the deleted user signs in: %d\n%s", resp.StatusCode, page)
	}
	if out, err := s.caddy.cli("", "user", "delete", "alice"); err == nil {
		t.Fatalf("deleting twice: %s", out)
	}
	s.addUser(t, "alice", "another horse battery") // the name is free again
	if !strings.Contains(s.caddy.log.String(), `"event":"admin_action"`) {
		t.Fatal("no audit line")
	}

	if out, err := s.caddy.cli("", "client", "add", "temp", "--redirect-uri", s.redirect); err != nil {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "client", "delete", "temp"); err != nil || !strings.Contains(out, "deleted client temp") {
		t.Fatalf("client delete: %v\n%s", err, out)
	}
	if out, _ := s.caddy.cli("", "client", "list"); strings.Contains(out, "temp") {
		t.Fatalf("client list after the delete:\n%s", out)
	}
	if out, err := s.caddy.cli("", "client", "delete", "app"); err == nil || !strings.Contains(out, "configured in the Caddyfile") {
		t.Fatalf("deleting a Caddyfile client: %v\n%s", err, out)
	}
}
