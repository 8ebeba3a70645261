package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestThirdPartyRPAcceptsLogoutToken has an independent relying party —
// openid-client and jose from npm, in Node.js — discover Gatehouse and
// validate the logout token Gatehouse sends it.
func TestThirdPartyRPAcceptsLogoutToken(t *testing.T) {
	idpPort, rpPort := freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", idpPort)
	c := startIDP(t, issuer, fmt.Sprintf(`		client rp {
			secret rp-secret
			redirect_uri http://rp.localhost/callback
			backchannel_logout_uri http://127.0.0.1:%[2]d/bcl
		}
`, issuer, rpPort))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	rp := startNodeRP(t, "rp.mjs", issuer, "rp", "rp-secret", fmt.Sprint(rpPort)).ready()
	next := rp.next
	// The RP can refuse: a forged token is rejected.
	resp, err := http.PostForm(fmt.Sprintf("http://127.0.0.1:%d/bcl", rpPort), url.Values{"logout_token": {"eyJhbGciOiJub25lIn0.e30."}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if m := next(); m["accepted"] != false || resp.StatusCode != 400 {
		t.Fatalf("forged token: %v %d", m, resp.StatusCode)
	}

	// Sign in to the RP, then end the session: the RP accepts the token.
	s := &idpSetup{caddy: c, issuer: issuer, appHost: "rp.localhost"}
	b := newBrowser(t, "rp.localhost")
	q := s.authorize(t, b, issuer+"/authorize?"+url.Values{"client_id": {"rp"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"http://rp.localhost/callback"}, "code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}}.Encode(),
		"alice", "correct horse battery")
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	if out, err := c.cli("", "session", "revoke", "--user", "alice"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	m := next()
	if m["accepted"] != true || m["aud"] != "rp" || m["sid"] == nil {
		t.Fatalf("the Node.js RP did not accept the logout token: %v", m)
	}
}

// needNode makes sure node and the npm packages of thirdparty/ are there.
func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (run .ci/run, which installs it)")
	}
	if _, err := os.Stat("thirdparty/node_modules/openid-client"); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = "thirdparty"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
}
