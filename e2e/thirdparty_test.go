package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestThirdPartyRPAcceptsLogoutToken has an independent relying party —
// openid-client and jose from npm, in Node.js — discover Gatehouse and
// validate the logout token Gatehouse sends it.
func TestThirdPartyRPAcceptsLogoutToken(t *testing.T) {
	needNodeRP(t)
	idpPort, rpPort := freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", idpPort)
	c := startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		client rp {
			secret rp-secret
			redirect_uri http://rp.localhost/callback
			backchannel_logout_uri http://127.0.0.1:%[2]d/bcl
		}
	}
}
%[1]s {
	gatehouse_idp
}
`, issuer, rpPort))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	node := exec.Command("node", "rp.mjs", issuer, "rp", "rp-secret", fmt.Sprint(rpPort))
	node.Dir = "thirdparty"
	stdout, _ := node.StdoutPipe()
	node.Stderr = os.Stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Process.Signal(syscall.SIGTERM); node.Wait() })
	lines := make(chan map[string]any, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	next := func() map[string]any {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("the Node.js relying party exited")
			}
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no answer from the Node.js relying party")
		}
		return nil
	}
	if m := next(); m["ready"] != true {
		t.Fatalf("rp: %v", m)
	}
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
