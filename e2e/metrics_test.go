package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// Health and metrics of a running Caddy (and the gate's sign-in page
// names the site): /healthz answers load
// balancers; Caddy's admin /metrics has Gatehouse's counters after a
// failed and a good sign-in, a token grant, gate decisions and a
// sign-out.
func TestMetricsAndHealth(t *testing.T) {
	s, gated := newGatedIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	rp := s.client(t)

	plain := &http.Client{Transport: loopbackTransport()}
	resp, err := plain.Get(s.issuer + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}

	// A wrong password, then the right one; the code is exchanged.
	b := newBrowser(t, s.appHost)
	verifier := oauth2.GenerateVerifier()
	authURL := rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
	r, page := b.get(authURL)
	b.submitLogin(r.Request.URL.String(), page, "alice", "wrong horse")
	q := s.authorize(t, b, authURL, "alice", "correct horse battery")
	if _, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	// The gate: a stranger is sent to sign in; a path trick is refused.
	stranger := newBrowser(t, "auth.localhost")
	if _, page := stranger.get(gated + "/page"); !strings.Contains(page, "to continue to <strong>"+strings.TrimPrefix(gated, "http://")+"</strong>") {
		t.Errorf("the gate's sign-in page does not name the site:\n%s", page)
	}
	stranger.get(gated + "/a/%2e%2e/b")

	resp, err = http.Get("http://" + s.caddy.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(body)
	gateName := regexp.QuoteMeta(gated + " acr=any")
	for _, want := range []string{
		`gatehouse_logins_total\{module="Password",result="failed"\} 1`,
		`gatehouse_logins_total\{module="Password",result="succeeded"\} 1`,
		`gatehouse_token_grants_total\{grant_type="authorization_code"\} 1`,
		`gatehouse_gate_decisions_total\{gate="` + gateName + `",result="login"\} 1`,
		`gatehouse_gate_decisions_total\{gate="` + gateName + `",result="bad_path"\} 1`,
		`gatehouse_security_events_total\{event="login_failed",module="Password"\} 1`,
		`gatehouse_store_call_seconds_count\{op="get"\} [1-9]`,
		`gatehouse_password_checks_capacity [1-9]`,
		`gatehouse_password_checks_running 0`,
	} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(m) {
			t.Errorf("no %s in /metrics", want)
		}
	}
	if t.Failed() {
		t.Logf("gatehouse metrics:\n%s", grepLines(m, "gatehouse_"))
	}
}

// newGatedIDP is an IdP (idpSetup, with extraGlobal in its gatehouse
// block) and a site behind a gate (its origin, returned; gateSettings
// in its block) in front of an echoing upstream.
func newGatedIDP(t *testing.T, extraGlobal string, gateSettings ...string) (*idpSetup, string) {
	up := echoUpstream(t)
	s := &idpSetup{authPort: freePort(t), appPort: freePort(t)}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.appHost = fmt.Sprintf("app.localhost:%d", s.appPort)
	s.redirect = "http://" + s.appHost + "/callback"
	gated := fmt.Sprintf("http://gated.localhost:%d", freePort(t))
	s.caddy = startCaddy(t, s.caddyfile(extraGlobal)+fmt.Sprintf("\n%s {\n\tgatehouse_gate {\n%s\n\t}\n\treverse_proxy %s\n}\n",
		gated, strings.Join(gateSettings, "\n"), strings.TrimPrefix(up.URL, "http://")))
	return s, gated
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
