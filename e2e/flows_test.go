package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodeRP is a Node.js relying party (e2e/thirdparty) answering one JSON
// command per line.
type nodeRP struct {
	t     *testing.T
	stdin interface{ Write([]byte) (int, error) }
	lines chan map[string]any
}

// startNodeRP runs script from e2e/thirdparty with args.
func startNodeRP(t *testing.T, script string, args ...string) *nodeRP {
	t.Helper()
	needNode(t)
	node := exec.Command("node", append([]string{script}, args...)...)
	node.Dir = "thirdparty"
	stdout, _ := node.StdoutPipe()
	stdin, _ := node.StdinPipe()
	node.Stderr = os.Stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); node.Process.Signal(syscall.SIGTERM); node.Wait() })
	rp := &nodeRP{t: t, stdin: stdin, lines: make(chan map[string]any, 10)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				rp.lines <- m
			}
		}
		close(rp.lines)
	}()
	return rp
}

func (rp *nodeRP) next() map[string]any {
	rp.t.Helper()
	select {
	case m, ok := <-rp.lines:
		if !ok {
			rp.t.Fatal("the Node.js relying party exited")
		}
		return m
	case <-time.After(30 * time.Second):
		rp.t.Fatal("no answer from the Node.js relying party")
	}
	return nil
}

// send writes one line to the script.
func (rp *nodeRP) send(line string) {
	rp.t.Helper()
	if _, err := rp.stdin.Write([]byte(line + "\n")); err != nil {
		rp.t.Fatal(err)
	}
}

// ready waits for the script's {"ready": true}.
func (rp *nodeRP) ready() *nodeRP {
	rp.t.Helper()
	if m := rp.next(); m["ready"] != true {
		rp.t.Fatalf("the Node.js relying party: %v", m)
	}
	return rp
}

// do sends a command and returns the answer; an error answer fails the
// test unless allowError.
func (rp *nodeRP) do(cmd map[string]any, allowError bool) map[string]any {
	rp.t.Helper()
	b, _ := json.Marshal(cmd)
	rp.send(string(b))
	m := rp.next()
	if m["error"] != nil && !allowError {
		rp.t.Fatalf("%v: %v", cmd, m)
	}
	return m
}

func sub(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	return v
}

// TestOpenIDClientFlows has npm openid-client run every flow against a
// real Caddy: code with PKCE and consent, refresh with rotation and reuse
// detection, userinfo, introspection, revocation, form_post, hybrid,
// implicit and client_credentials.
func TestOpenIDClientFlows(t *testing.T) {
	idpPort := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", idpPort)
	const redirect = "http://rp.localhost/cb"
	c := startIDP(t, issuer, fmt.Sprintf(`		scope reports:read {
			description "Read the reports"
			claims department
		}
		client rp {
			name "Report Viewer"
			secret rp-secret
			redirect_uri %[2]s
			grant_types authorization_code refresh_token implicit
			response_types code "code id_token" id_token
		}
		client svc {
			secret svc-secret
			grant_types client_credentials
			scopes reports:read
			resource_server
		}
`, issuer, redirect))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--email", "alice@example.com", "--email-verified", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := c.cli("", "user", "set", "alice", "--phone", "+1 555 0100", "--locality", "Springfield", "--attr", "department=Finance"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	rp := startNodeRP(t, "flows.mjs", issuer, "rp", "rp-secret", redirect).ready()
	b := newBrowser(t, "rp.localhost")

	// Code flow: sign in, then the consent page, where phone is unticked.
	start := rp.do(map[string]any{"op": "start", "flow": "code", "scope": "openid profile email phone offline_access reports:read"}, false)
	resp, page := b.get(start["url"].(string))
	resp, page = b.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery")
	if resp.StatusCode != 200 || !strings.Contains(page, "Report Viewer") || !strings.Contains(page, "Read the reports") {
		t.Fatalf("no consent page (%d):\n%s", resp.StatusCode, page)
	}
	resp, _ = b.submitForm(resp.Request.URL.String(), page, url.Values{"action": {"allow"}, "grant": {"profile", "email", "offline_access", "reports:read"}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("consent answer: %d", resp.StatusCode)
	}
	got := rp.do(map[string]any{"op": "callback", "url": resp.Header.Get("Location")}, false)
	if sub(got, "claims", "email") != "alice@example.com" || sub(got, "claims", "phone_number") != nil || sub(got, "tokens", "refresh_token") == nil ||
		!strings.Contains(sub(got, "tokens", "scope").(string), "offline_access") || strings.Contains(sub(got, "tokens", "scope").(string), "phone") {
		t.Fatalf("code flow: %v", got)
	}
	info := rp.do(map[string]any{"op": "userinfo"}, false)
	if sub(info, "claims", "email") != "alice@example.com" || sub(info, "claims", "phone_number") != nil || sub(info, "claims", "department") != "Finance" {
		t.Errorf("userinfo: %v", info)
	}
	// Refresh rotates; the old token again revokes the family.
	first := sub(got, "tokens", "refresh_token")
	ref := rp.do(map[string]any{"op": "refresh"}, false)
	if sub(ref, "tokens", "refresh_token") == first || sub(ref, "claims", "sub") != sub(got, "claims", "sub") {
		t.Fatalf("refresh: %v", ref)
	}
	if a := rp.do(map[string]any{"op": "introspect", "which": "access"}, false); sub(a, "answer", "active") != true || sub(a, "answer", "client_id") != "rp" {
		t.Errorf("introspection: %v", a)
	}
	if e := rp.do(map[string]any{"op": "refresh", "old": true}, true); e["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %v", e)
	}
	for _, which := range []string{"access", "refresh"} {
		if a := rp.do(map[string]any{"op": "introspect", "which": which}, false); sub(a, "answer", "active") != false {
			t.Errorf("%s token after reuse: %v", which, a)
		}
	}

	// form_post: consent remembered, the response comes as a form.
	start = rp.do(map[string]any{"op": "start", "flow": "code", "response_mode": "form_post", "scope": "openid profile email offline_access reports:read"}, false)
	resp, page = b.get(start["url"].(string))
	fields := map[string]string{}
	for _, h := range hiddenInput.FindAllStringSubmatch(page, -1) {
		fields[h[1]] = html.UnescapeString(h[2])
	}
	if resp.StatusCode != 200 || fields["code"] == "" || !strings.Contains(page, `action="`+redirect+`"`) {
		t.Fatalf("form_post page (%d):\n%s", resp.StatusCode, page)
	}
	got = rp.do(map[string]any{"op": "callback", "url": redirect, "body": fields}, false)
	if sub(got, "claims", "email") != "alice@example.com" {
		t.Fatalf("form_post flow: %v", got)
	}
	// Revoking the refresh token ends its access token too.
	rp.do(map[string]any{"op": "revoke", "which": "refresh"}, false)
	if a := rp.do(map[string]any{"op": "introspect", "which": "access"}, false); sub(a, "answer", "active") != false {
		t.Errorf("access token after revoking its refresh token: %v", a)
	}

	// Hybrid (code id_token) and implicit (id_token), in the fragment.
	for _, flow := range []string{"hybrid", "implicit"} {
		start = rp.do(map[string]any{"op": "start", "flow": flow, "scope": "openid profile email"}, false)
		resp, _ = b.get(start["url"].(string))
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "#") || !strings.Contains(loc, "id_token=") {
			t.Fatalf("%s: %d %s", flow, resp.StatusCode, loc)
		}
		got = rp.do(map[string]any{"op": "callback", "url": loc}, false)
		if sub(got, "claims", "preferred_username") != "alice" {
			t.Errorf("%s flow: %v", flow, got)
		}
	}

	// client_credentials.
	cc := rp.do(map[string]any{"op": "client_credentials", "client_id": "svc", "client_secret": "svc-secret", "scope": "reports:read"}, false)
	if sub(cc, "tokens", "access_token") == nil || sub(cc, "tokens", "scope") != "reports:read" || sub(cc, "tokens", "refresh_token") != nil {
		t.Errorf("client_credentials: %v", cc)
	}
	if e := rp.do(map[string]any{"op": "client_credentials", "client_id": "svc", "client_secret": "svc-secret", "scope": "openid"}, true); e["error"] != "invalid_scope" {
		t.Errorf("client_credentials with openid: %v", e)
	}
}
