package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// auditLines are the security events Caddy logged so far, decoded.
func auditLines(t *testing.T, c *caddy) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(c.log.String(), "\n") {
		if !strings.Contains(line, `"gatehouse.audit"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line is not JSON: %v\n%s", err, line)
		}
		if m["logger"] != "gatehouse.audit" {
			continue
		}
		out = append(out, m)
	}
	return out
}

// findAudit returns the audit lines of event whose fields include want.
func findAudit(t *testing.T, c *caddy, event string, want map[string]string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range auditLines(t, c) {
		if m["event"] != event {
			continue
		}
		ok := true
		for k, v := range want {
			if fmt.Sprint(m[k]) != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// tryPassword runs one fresh sign-in attempt at the IdP through client
// app and posts username/password; it returns the status and page.
func tryPassword(t *testing.T, s *idpSetup, username, password string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := newBrowser(t, s.appHost)
	b.client.Jar = jar
	q := url.Values{"client_id": {"app"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {s.redirect},
		"state": {"st"}, "code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}
	resp, page := b.get(s.issuer + "/authorize?" + q.Encode())
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("no login page: %d", resp.StatusCode)
	}
	resp, page = b.submitLogin(resp.Request.URL.String(), page, username, password)
	return resp.StatusCode, page
}

// Thirty wrong passwords for one user from one client: slowed, then
// banned; the right password during the ban is refused; the CLI lifts
// the ban. Every step leaves its audit line.
func TestRegulationBansGuessing(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	start := time.Now()
	checked, delayed := 0, 0
	var banned bool
	for i := 0; i < 30; i++ {
		st, page := tryPassword(t, s, "alice", fmt.Sprintf("wrong guess %d", i))
		switch {
		case st == http.StatusUnauthorized && strings.Contains(page, "Wrong username or password"):
			checked++
		case st == http.StatusTooManyRequests && strings.Contains(page, "Too many attempts"):
			if strings.Contains(page, "minutes") {
				banned = true
			} else {
				delayed++
				time.Sleep(time.Second) // a guesser that waits out the delays
			}
		default:
			t.Fatalf("guess %d: %d\n%s", i, st, page)
		}
	}
	elapsed := time.Since(start)
	perMinute := float64(checked) / elapsed.Minutes()
	t.Logf("30 guesses in %v: %d checked (%.1f per minute while guessing), %d refused as too soon, banned: %v",
		elapsed.Round(time.Millisecond), checked, perMinute, delayed, banned)
	fmt.Printf("regulation: %d of 30 wrong passwords checked in %v (then banned for 5 minutes, doubling): %.1f guesses/min over that run, 1 per 2.5 min at best after\n",
		checked, elapsed.Round(time.Second), perMinute)
	if checked != 5 || !banned {
		t.Fatalf("%d guesses checked, banned=%v; want 5, then a ban", checked, banned)
	}
	if st, _ := tryPassword(t, s, "alice", "correct horse battery"); st != http.StatusTooManyRequests {
		t.Fatalf("right password during the ban: %d", st)
	}
	out, err := s.caddy.cli("", "bans", "list")
	if err != nil || !strings.Contains(out, "alice") {
		t.Fatalf("bans list: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "bans", "remove", "--user", "alice"); err != nil || !strings.Contains(out, "lifted") {
		t.Fatalf("bans remove: %v\n%s", err, out)
	}
	if st, _ := tryPassword(t, s, "alice", "correct horse battery"); st != http.StatusFound {
		t.Fatalf("right password after the ban was lifted: %d", st)
	}

	// The audit trail, field by field.
	failed := findAudit(t, s.caddy, "login_failed", map[string]string{"user": "alice", "module": "Password", "ip": "127.0.0.1", "client": "app"})
	if len(failed) != 5 {
		t.Fatalf("%d login_failed lines for alice, want 5", len(failed))
	}
	if failed[0]["sub"] == nil || failed[0]["level"] != "warn" {
		t.Fatalf("login_failed line %v", failed[0])
	}
	if b := findAudit(t, s.caddy, "banned", map[string]string{"user": "alice"}); len(b) != 1 || !strings.HasPrefix(fmt.Sprint(b[0]["key"]), "user:") || b[0]["until"] == nil {
		t.Fatalf("banned lines %v", b)
	}
	if n := len(findAudit(t, s.caddy, "rate_limited", map[string]string{"user": "alice", "reason": "banned"})); n < 1 {
		t.Fatal("no rate_limited line for an attempt during the ban")
	}
	if n := len(findAudit(t, s.caddy, "ban_lifted", map[string]string{})); n != 1 {
		t.Fatalf("%d ban_lifted lines", n)
	}
	if n := len(findAudit(t, s.caddy, "admin_action", map[string]string{"reason": "POST /gatehouse/bans/lift"})); n != 1 {
		t.Fatalf("%d admin_action lines for the lift", n)
	}
	ok := findAudit(t, s.caddy, "login_succeeded", map[string]string{"user": "alice", "client": "app", "ip": "127.0.0.1", "amr": "pwd"})
	if len(ok) != 1 || ok[0]["sid"] == nil {
		t.Fatalf("login_succeeded lines %v", ok)
	}
	// An unknown name is logged as attempted, not as a user.
	tryPassword(t, s, "mallory", "anything at all")
	if m := findAudit(t, s.caddy, "login_failed", map[string]string{"attempted": "mallory"}); len(m) != 1 || m[0]["user"] != nil {
		t.Fatalf("unknown name: %v", m)
	}
}

// One password sprayed over fifty accounts from one address bans the
// address. (The address's delays are shortened so the test waits
// seconds, not minutes; the limit itself is the default.)
func TestRegulationBansASpray(t *testing.T) {
	s := newIDP(t, "regulation {\n\t\t\tip {\n\t\t\t\tdelay 50ms\n\t\t\t}\n\t\t}")
	s.addUser(t, "alice", "correct horse battery")
	ipBanned := -1
	for i := range 50 {
		st, page := tryPassword(t, s, fmt.Sprintf("user%02d", i), "Spring2026!")
		for st == http.StatusTooManyRequests && !strings.Contains(page, "minutes") {
			time.Sleep(200 * time.Millisecond)
			st, page = tryPassword(t, s, fmt.Sprintf("user%02d", i), "Spring2026!")
		}
		if st == http.StatusTooManyRequests {
			ipBanned = i
			break
		}
	}
	if ipBanned != 20 {
		t.Fatalf("address banned after %d accounts, want 20", ipBanned)
	}
	if st, _ := tryPassword(t, s, "alice", "correct horse battery"); st != http.StatusTooManyRequests {
		t.Fatalf("a real user from the banned address: %d", st)
	}
	if b := findAudit(t, s.caddy, "banned", map[string]string{"key": "ip:127.0.0.1"}); len(b) != 1 {
		t.Fatalf("ip ban audit lines: %v", b)
	}
	if out, err := s.caddy.cli("", "bans", "remove", "--ip", "127.0.0.1"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if st, _ := tryPassword(t, s, "alice", "correct horse battery"); st != http.StatusFound {
		t.Fatalf("after lifting the address ban: %d", st)
	}
}

// The counters live in the store: two instances on one Redis share
// them, so switching instances does not reset a guesser.
func TestRegulationAcrossInstances(t *testing.T) {
	redisAddr := startRedisServer(t)
	authPort := freePort(t)
	issuer := fmt.Sprintf("http://auth.localhost:%d", authPort)
	otherPort := freePort(t)
	appHost := fmt.Sprintf("app.localhost:%d", freePort(t))
	global := fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %s
		dev
		store redis redis://%s/0
		client app {
			secret app-secret-0123456789
			redirect_uri http://%s/callback
		}
	}
}
`, issuer, redisAddr, appHost)
	a := &idpSetup{issuer: issuer, appHost: appHost, redirect: "http://" + appHost + "/callback"}
	a.caddy = startCaddy(t, global+fmt.Sprintf("%s {\n\tgatehouse_idp\n}\n", issuer))
	// The second instance serves the same issuer on another port.
	b := &idpSetup{issuer: fmt.Sprintf("http://auth.localhost:%d", otherPort), appHost: appHost, redirect: a.redirect}
	b.caddy = startCaddy(t, global+fmt.Sprintf("http://:%d {\n\tgatehouse_idp\n}\n", otherPort))
	a.addUser(t, "alice", "correct horse battery")
	checked := 0
	for i := range 12 {
		s := a
		if i%2 == 1 {
			s = b
		}
		st, page := tryPassword(t, s, "alice", fmt.Sprintf("wrong %d", i))
		if st == http.StatusUnauthorized {
			checked++
		} else if !strings.Contains(page, "minutes") {
			time.Sleep(time.Second)
		}
	}
	if checked != 5 {
		t.Fatalf("%d wrong passwords checked across two instances, want 5 in all", checked)
	}
	if st, _ := tryPassword(t, b, "alice", "correct horse battery"); st != http.StatusTooManyRequests {
		t.Fatalf("the other instance lets the banned account try: %d", st)
	}
}

// The token endpoint's client authentication is regulated too.
func TestRegulationOfClientSecrets(t *testing.T) {
	s := newIDP(t, "")
	c := &http.Client{Transport: loopbackTransport()}
	statuses := map[int]int{}
	for i := range 15 {
		req, _ := http.NewRequest(http.MethodPost, s.issuer+"/token", strings.NewReader("grant_type=authorization_code&code=x&redirect_uri=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", fmt.Sprintf("wrong-secret-%d", i))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		statuses[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if statuses[http.StatusUnauthorized] > 10 || statuses[http.StatusTooManyRequests] == 0 {
		t.Fatalf("15 wrong client secrets: %v", statuses)
	}
	if n := len(findAudit(t, s.caddy, "bad_client_secret", map[string]string{"client": "app", "ip": "127.0.0.1"})); n != statuses[http.StatusUnauthorized] {
		t.Fatalf("%d bad_client_secret lines for %d refusals", n, statuses[http.StatusUnauthorized])
	}
}

// New passwords follow the policy; the CLI says why one is refused.
func TestPasswordPolicyAtTheCLI(t *testing.T) {
	s := newIDP(t, "")
	for pw, why := range map[string]string{
		"x": "at least 12 characters", "password1234": "too easy to guess", "alice-the-admin-99": "must not contain your username",
	} {
		out, err := s.caddy.cli(pw+"\n", "user", "add", "alice", "--password-stdin")
		if err == nil || !strings.Contains(out, why) {
			t.Errorf("password %q: %v %q, want %q", pw, err, out, why)
		}
	}
	s.addUser(t, "alice", "correct horse battery")
	if out, err := s.caddy.cli("qwerty123456\n", "user", "passwd", "alice", "--password-stdin"); err == nil || !strings.Contains(out, "too easy") {
		t.Fatalf("weak new password: %v %s", err, out)
	}
	if n := len(findAudit(t, s.caddy, "admin_action", map[string]string{"target": "user:alice"})); n < 2 {
		t.Fatalf("admin actions on alice not audited (%d lines)", n)
	}
}

// Fifty logins at once stay within memory: password checks are bounded
// (bench/logins.sh prints the figures against an unbounded baseline).
func TestConcurrentLoginsStayWithinMemory(t *testing.T) {
	// Regulation would turn most of these away (one account, one
	// address): lift it here, the bound under test is the hashing one.
	s := newIDP(t, `regulation {
			user {
				max_retries 10000
				free_retries 9999
			}
			ip {
				max_retries 10000
				free_retries 9999
			}
		}`)
	s.addUser(t, "alice", "correct horse battery")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := tryPassword(t, s, "alice", "correct horse battery")
			mu.Lock()
			codes[st]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusFound] == 0 || codes[http.StatusFound]+codes[http.StatusServiceUnavailable] != 50 {
		t.Fatalf("answers %v", codes)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.caddy.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			t.Logf("peak resident memory after 50 concurrent logins: %d MB", kb/1024)
			if kb > 400*1024 {
				t.Fatalf("peak resident memory %d MB, want < 400 MB", kb/1024)
			}
			return
		}
	}
	t.Fatal("no VmHWM")
}

// The audit trail of a sign-in's life, field by field.
func TestAuditTrail(t *testing.T) {
	s := newChainSetup(t)
	b := newBrowser(t)
	if _, _, echo := s.visit(t, b, s.app+"/", nil); echo == nil {
		t.Fatal("sign-in failed")
	}
	resp, page := b.get(s.app + "/admin/")
	secret := totpSecretRE.FindStringSubmatch(page)[1]
	b.submitForm(resp.Request.URL.String(), page, url.Values{"code": {totpCode(t, secret, time.Now())}})
	c := &http.Client{Transport: loopbackTransport()}
	for _, q := range []string{"client_id=nope&redirect_uri=http%3A%2F%2Fx%2Fcb", "client_id=gatehouse-gates&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"} {
		if resp, err := c.Get(s.issuer + "/authorize?response_type=code&scope=openid&" + q); err == nil {
			readAll(resp)
		}
	}
	if out, err := s.caddy.cli("", "user", "reset-totp", "alice"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := s.caddy.cli("another good passphrase\n", "user", "passwd", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	checks := []struct {
		event string
		want  map[string]string
	}{
		{"login_succeeded", map[string]string{"user": "alice", "client": "gatehouse-gates", "ip": "127.0.0.1", "amr": "pwd"}},
		{"factor_enrolled", map[string]string{"module": "totp"}},
		{"step_up", map[string]string{"user": "alice", "amr": "otp"}},
		{"unknown_client", map[string]string{"client": "nope", "ip": "127.0.0.1", "reason": "authorize"}},
		{"bad_redirect_uri", map[string]string{"client": "gatehouse-gates", "target": "https://evil.example/cb"}},
		{"factor_reset", map[string]string{"user": "alice", "module": "totp"}},
		{"password_changed", map[string]string{"user": "alice"}},
		{"session_ended", map[string]string{"reason": "password_changed"}},
		{"admin_action", map[string]string{"target": "user:alice", "reason": "POST /gatehouse/users/password"}},
	}
	for _, c := range checks {
		got := findAudit(t, s.caddy, c.event, c.want)
		if len(got) == 0 {
			t.Errorf("no %s line with %v; trail:\n%v", c.event, c.want, auditLines(t, s.caddy))
			continue
		}
		if got[0]["msg"] != "gatehouse security event" || got[0]["ts"] == nil {
			t.Errorf("%s line %v", c.event, got[0])
		}
	}
}

// The README's log configuration routes the trail to a file of its own
// (for fail2ban or a SIEM), and out of the default log.
func TestAuditLogToItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/audit.log"
	s := &idpSetup{authPort: freePort(t), appPort: freePort(t)}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.appHost = fmt.Sprintf("app.localhost:%d", s.appPort)
	s.redirect = "http://" + s.appHost + "/callback"
	cfg := strings.Replace(s.caddyfile(""), "\tgatehouse {", fmt.Sprintf(`	log gatehouse_audit {
		include gatehouse.audit
		output file %s
		format json
	}
	log default {
		exclude gatehouse.audit
	}
	gatehouse {`, file), 1)
	s.caddy = startCaddy(t, cfg)
	s.addUser(t, "alice", "correct horse battery")
	tryPassword(t, s, "alice", "wrong guess")
	var lines []string
	for i := 0; i < 50; i++ {
		b, _ := os.ReadFile(file)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 0 && strings.Contains(lines[len(lines)-1], "login_failed") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil || m["event"] != "login_failed" || m["ip"] != "127.0.0.1" || m["user"] != "alice" {
		t.Fatalf("audit file: %v %v\n%s", err, m, strings.Join(lines, "\n"))
	}
	if strings.Contains(s.caddy.log.String(), `"gatehouse.audit"`) {
		t.Fatal("audit lines still in the default log")
	}
	// The README's fail2ban filter matches it.
	re := regexp.MustCompile(`"logger":"gatehouse\.audit".*"event":"(?:login_failed|bad_client_secret|rate_limited)".*"ip":"([0-9a-fA-F.:]+)"`)
	if mm := re.FindStringSubmatch(lines[len(lines)-1]); mm == nil || mm[1] != "127.0.0.1" {
		t.Fatalf("fail2ban regex does not match: %s", lines[len(lines)-1])
	}
}
