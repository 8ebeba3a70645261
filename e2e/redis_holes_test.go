package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// holesOnRedis is one or two Caddy instances on one real redis-server:
// the IdP and a gated site on the first, the same site on the second.
type holesOnRedis struct {
	*gateSetup
	redisAddr string
	rdb       *goredis.Client
	global    string
	sites     string
	other     *caddy
	otherPort int
}

func newHolesOnRedis(t *testing.T, twoInstances bool) *holesOnRedis {
	s := &holesOnRedis{redisAddr: startRedisServer(t)}
	s.rdb = goredis.NewClient(&goredis.Options{Addr: s.redisAddr})
	t.Cleanup(func() { s.rdb.Close() })
	up := echoUpstream(t)
	s.gateSetup = &gateSetup{idpSetup: &idpSetup{authPort: freePort(t)}}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.app = fmt.Sprintf("http://app.localhost:%d", freePort(t))
	s.global = fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %s
		dev
		store redis redis://%s/0
		client app {
			first_party
			secret app-secret
			redirect_uri http://rp.localhost/callback
		}
	}
}
`, s.issuer, s.redisAddr)
	s.sites = fmt.Sprintf(`
%s {
	gatehouse_idp
}
%s {
	gatehouse_gate
	reverse_proxy %s
}
`, s.issuer, s.app, strings.TrimPrefix(up.URL, "http://"))
	s.caddy = startCaddy(t, s.global+s.sites)
	if twoInstances {
		s.otherPort = freePort(t)
		s.other = startCaddy(t, s.global+fmt.Sprintf(`
http://:%d {
	gatehouse_gate {
		hosts %s
	}
	reverse_proxy %s
}
`, s.otherPort, s.app, strings.TrimPrefix(up.URL, "http://")))
	}
	s.addUser(t, "alice", "correct horse battery")
	return s
}

// redisPID is the pid of the redis-server listening on addr.
func (s *holesOnRedis) redisPID(t *testing.T) int {
	info, err := s.rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			var pid int
			fmt.Sscan(v, &pid)
			return pid
		}
	}
	t.Fatal("no process_id in INFO")
	return 0
}

// sameOriginGet is a navigation from the site itself.
func sameOriginGet(t *testing.T, b *browser, u string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Dest", "document")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readAll(resp)
}

// Hole 11: a sign-out while the store is unreachable says it failed,
// keeps the user signed in, and works when tried again.
func TestHoleLogoutDuringStoreOutage(t *testing.T) {
	s := newHolesOnRedis(t, false)
	b := newBrowser(t)
	if _, _, echo := s.visit(t, b, s.app+"/hello", nil); echo == nil || echo["Remote-User"] != "alice" {
		t.Fatal("sign-in failed")
	}
	pid := s.redisPID(t)
	// The store hangs (not down: a stopped process keeps its data).
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
			resumed = true
		}
	}
	defer resume()
	for _, u := range []string{s.app + "/.gatehouse/logout", s.issuer + "/logout"} {
		resp, page := sameOriginGet(t, b, u)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "still signed in") || strings.Contains(page, "You are signed out") {
			t.Fatalf("%s with the store hung: %d\n%s", u, resp.StatusCode, page)
		}
	}
	resume()
	// Nothing was reported as done, and nothing is: still signed in.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _, echo := s.visit(t, b, s.app+"/hello", nil)
		if echo != nil && echo["Remote-User"] == "alice" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed sign-out signed the user out (or the store did not recover)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Trying again works (on through the provider's sign-out and back to
	// the site, which asks to sign in), and then the cookies are dead.
	resp, page := sameOriginGet(t, b, s.app+"/.gatehouse/logout")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("sign-out after recovery: %d\n%s", resp.StatusCode, page)
	}
	b.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if r, _ := b.get(s.app + "/hello"); r.StatusCode != http.StatusFound {
		t.Fatalf("after the retried sign-out: %d", r.StatusCode)
	}
}

// Hole 12: unauthenticated requests to /authorize, the login page and a
// gated site do not grow the store.
func TestHoleUnauthenticatedRequestsDoNotGrowTheStore(t *testing.T) {
	s := newHolesOnRedis(t, false)
	ctx := context.Background()
	// The expiry sweep's cursor is written once at start: wait for it.
	for i := 0; s.rdb.Exists(ctx, "gatehouse:kv:sso-exp-cursor").Val() == 0; i++ {
		if i > 100 {
			t.Fatal("the expiry sweep never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before, err := s.rdb.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var c *http.Client
	get := func(u string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		return resp
	}
	q := url.Values{"client_id": {"app"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"http://rp.localhost/callback"},
		"state": {strings.Repeat("s", 1000)}, "nonce": {strings.Repeat("n", 500)}, "login_hint": {"someone"},
		"code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}
	for range 300 {
		// A client that keeps its cookies (the login page is bound to its
		// browser id), a new one each time.
		jar, _ := cookiejar.New(nil)
		c = &http.Client{Jar: jar, Transport: loopbackTransport(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp := get(s.issuer + "/authorize?" + q.Encode())
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("authorize: %d", resp.StatusCode)
		}
		if r := get(s.issuer + resp.Header.Get("Location")); r.StatusCode != http.StatusOK {
			t.Fatalf("login page: %d", r.StatusCode)
		}
		if r := get(s.app + "/page"); r.StatusCode != http.StatusFound {
			t.Fatalf("gated page: %d", r.StatusCode)
		}
	}
	after, _ := s.rdb.DBSize(ctx).Result()
	if after != before {
		keys, _ := s.rdb.Keys(ctx, "*").Result()
		t.Fatalf("900 unauthenticated requests grew the store from %d to %d keys: %v", before, after, keys)
	}
	// Oversized parameters are refused with an OAuth error, not kept.
	q.Set("state", strings.Repeat("s", 3000))
	if resp := get(s.issuer + "/authorize?" + q.Encode()); resp.StatusCode != http.StatusFound ||
		!strings.Contains(resp.Header.Get("Location"), "error=invalid_request") {
		t.Fatalf("oversized state: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Hole 14: the store loses its data (Redis flushed) and one instance
// restarts; the cluster recovers by itself: gates work on both
// instances (their registration comes from the configuration) and a
// session made on one is valid on the other (cookie keys are synced).
func TestHoleStoreLosesItsData(t *testing.T) {
	s := newHolesOnRedis(t, true)
	ctx := context.Background()
	if err := s.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.caddy.stop()
	s.caddy.start()
	s.addUser(t, "alice", "correct horse battery") // users went with the data
	b := newBrowser(t)
	if resp, body, echo := s.visit(t, b, s.app+"/hello", nil); echo == nil || echo["Remote-User"] != "alice" {
		t.Fatalf("sign-in after the flush failed: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	cookie := b.cookie(s.app, "gatehouse-gate")
	host := strings.TrimPrefix(s.app, "http://")
	atOther := func() int {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/hello", s.otherPort), nil)
		req.Host = host
		req.Header.Set("Accept", "application/json")
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(40 * time.Second)
	for atOther() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the other instance never accepted a session made after the flush")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The other instance's own gate signs in too (its client is static).
	nb := newBrowser(t)
	appPort := strings.Split(host, ":")[1]
	nb.client.Transport = portMapTransport(map[string]string{appPort: fmt.Sprint(s.otherPort)})
	if _, _, echo := s.visit(t, nb, s.app+"/hello", nil); echo == nil || echo["Remote-User"] != "alice" {
		t.Fatal("the other instance's gate cannot sign in after the flush")
	}
}

// portMapTransport sends every request to 127.0.0.1, to another port
// where ports says so (a load balancer picking the other instance).
func portMapTransport(ports map[string]string) http.RoundTripper {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if p, ok := ports[port]; ok {
			port = p
		}
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}}
}
