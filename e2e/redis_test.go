package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func startRedisServer(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (run .ci/run, which installs it)")
	}
	port := freePort(t)
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return ""
}

// TestTwoInstancesShareRedis runs two Caddy processes on one Redis, as
// behind a load balancer: a login on one is valid on the other, and a
// logout on one is refused by the other at once (pub/sub), not after
// its 30s cache bound.
func TestTwoInstancesShareRedis(t *testing.T) {
	redisAddr := startRedisServer(t)
	up := echoUpstream(t)
	authPort, appPort, otherPort := freePort(t), freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://auth.localhost:%d", authPort)
	appHost := fmt.Sprintf("app.localhost:%d", appPort)
	global := fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %s
		dev
		store redis redis://%s/0
	}
}
`, issuer, redisAddr)
	a := startCaddy(t, global+fmt.Sprintf(`
%s {
	gatehouse_idp
}
http://%s {
	gatehouse_gate
	reverse_proxy %s
}
`, issuer, appHost, strings.TrimPrefix(up.URL, "http://")))
	// The second instance serves the same site on another port (the
	// "load balancer" here is the test choosing where to send requests):
	// `hosts` names the public origin it serves.
	startCaddy(t, global+fmt.Sprintf(`
http://:%d {
	gatehouse_gate {
		hosts http://%s
	}
	reverse_proxy %s
}
`, otherPort, appHost, strings.TrimPrefix(up.URL, "http://")))
	if out, err := a.cli("correct horse battery\n", "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	s := &gateSetup{idpSetup: &idpSetup{issuer: issuer}}
	b := newBrowser(t)
	if _, _, echo := s.visit(t, b, "http://"+appHost+"/", nil); echo == nil || echo["Remote-User"] != "alice" {
		t.Fatal("login on the first instance failed")
	}
	cookie := b.cookie("http://"+appHost, "gatehouse-gate")
	atOther := func() int {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", otherPort), nil)
		req.Host = appHost
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := atOther(); st != http.StatusOK {
		t.Fatalf("the second instance refuses a session of the first: %d", st)
	}
	if out, err := a.cli("", "session", "revoke", "--user", "alice"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	start := time.Now()
	for atOther() != http.StatusUnauthorized {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the second instance still lets the logged-out session in")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
