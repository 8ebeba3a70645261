package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// cluster is three Caddy instances on one Redis, each serving the same
// IdP and the same gated site, behind a "load balancer": a transport
// that sends each new connection to the next instance, whatever the
// public host name says.
type cluster struct {
	issuer, app string
	// idp and gate are each instance's real listening ports.
	idp, gate []int
	caddies   []*caddy
	next      atomic.Uint32
}

func newCluster(t *testing.T, n int) *cluster {
	redisAddr := startRedisServer(t)
	up := echoUpstream(t)
	c := &cluster{}
	for range n {
		c.idp, c.gate = append(c.idp, freePort(t)), append(c.gate, freePort(t))
	}
	// The public names use the first instance's ports; every instance
	// answers for them (the IdP on any host, the gate through `hosts`).
	c.issuer = fmt.Sprintf("http://auth.localhost:%d", c.idp[0])
	c.app = fmt.Sprintf("http://app.localhost:%d", c.gate[0])
	for i := range n {
		c.caddies = append(c.caddies, startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		store redis redis://%[2]s/0
		password_hashing {
			memory 8MiB
			time 2
		}
		client rp {
			first_party
			secret rp-secret
			redirect_uri http://rp.localhost/callback
		}
	}
}
http://:%[3]d {
	gatehouse_idp
}
http://:%[4]d {
	gatehouse_gate {
		hosts %[5]s
	}
	reverse_proxy %[6]s
}
`, c.issuer, redisAddr, c.idp[i], c.gate[i], c.app, strings.TrimPrefix(up.URL, "http://"))))
	}
	if out, err := c.caddies[0].cli("correct horse battery\n", "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	return c
}

// port maps a public port to instance i's real one.
func (c *cluster) port(public string, i int) string {
	switch public {
	case fmt.Sprint(c.idp[0]):
		return fmt.Sprint(c.idp[i])
	case fmt.Sprint(c.gate[0]):
		return fmt.Sprint(c.gate[i])
	}
	return public
}

// transport sends every request on a new connection to the next
// instance (round robin), or always to instance fixed when >= 0.
func (c *cluster) transport(fixed int, served *[]int, mu *sync.Mutex) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		i := fixed
		if i < 0 {
			i = int(c.next.Add(1)) % len(c.caddies)
		}
		if served != nil {
			mu.Lock()
			*served = append(*served, i)
			mu.Unlock()
		}
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", c.port(port, i)))
	}}
}

// TestEveryFlowAcrossInstances: every request of the gate's sign-in and
// of an OIDC client's code flow lands on another instance than the one
// before; one code redeemed at once on every instance is redeemed once;
// a logout on one instance is seen by every instance's gate.
func TestEveryFlowAcrossInstances(t *testing.T) {
	c := newCluster(t, 3)
	var mu sync.Mutex
	var served []int
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, client: &http.Client{Jar: jar, Transport: c.transport(-1, &served, &mu), Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "rp.localhost" {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
	s := &gateSetup{idpSetup: &idpSetup{issuer: c.issuer}}
	if _, _, echo := s.visit(t, b, c.app+"/hello", nil); echo == nil || echo["Remote-User"] != "alice" {
		t.Fatal("the gate's sign-in across instances failed")
	}
	mu.Lock()
	for i := 1; i < len(served); i++ {
		if served[i] == served[i-1] {
			t.Fatalf("two requests in a row on instance %d: %v", served[i], served)
		}
	}
	t.Logf("the gate's sign-in took %d requests, on instances %v", len(served), served)
	mu.Unlock()

	// An OIDC client: authorize, sign-in (SSO here) and token, each on
	// another instance; x/oauth2 and go-oidc through the balancer.
	lb := &http.Client{Transport: c.transport(-1, nil, nil), Timeout: 20 * time.Second}
	ctx := oidc.ClientContext(context.Background(), lb)
	p, err := oidc.NewProvider(ctx, c.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: "rp", ClientSecret: "rp-secret", Endpoint: p.Endpoint(), RedirectURL: "http://rp.localhost/callback",
		Scopes: []string{oidc.ScopeOpenID}}
	code := func() (string, string) {
		v := oauth2.GenerateVerifier()
		resp, page := b.get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v)))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("authorize: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
		}
		return loc.Query().Get("code"), v
	}
	k, v := code()
	tok, err := conf.Exchange(ctx, k, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatalf("token on another instance: %v", err)
	}
	if _, err := p.Verifier(&oidc.Config{ClientID: "rp"}).Verify(ctx, tok.Extra("id_token").(string)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("userinfo on another instance: %v", err)
	}

	// One code, redeemed at the same moment on each instance: once.
	k, v = code()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range c.caddies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx := oidc.ClientContext(context.Background(), &http.Client{Transport: c.transport(i, nil, nil), Timeout: 20 * time.Second})
			if _, err := conf.Exchange(ictx, k, oauth2.VerifierOption(v)); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("one code redeemed %d times on %d instances", wins.Load(), len(c.caddies))
	}

	// A logout on one instance reaches every instance's gate.
	cookie := b.cookie(c.app, "gatehouse-gate")
	at := func(i int) int {
		req, _ := http.NewRequest(http.MethodGet, c.app+"/hello", nil)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		resp, err := (&http.Client{Transport: c.transport(i, nil, nil)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range c.caddies {
		if st := at(i); st != http.StatusOK {
			t.Fatalf("instance %d refuses the session: %d", i, st)
		}
	}
	if out, err := c.caddies[1].cli("", "session", "revoke", "--user", "alice"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := range c.caddies {
		for at(i) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d still lets the logged-out session in", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLogoutPropagationAcrossInstances measures how long a logout on one
// instance takes to reach the other instances' gates, over many
// logouts (each a fresh sign-in whose gate session is cached on every
// instance first).
func TestLogoutPropagationAcrossInstances(t *testing.T) {
	c := newCluster(t, 3)
	const rounds = 1000
	var took []time.Duration
	s := &gateSetup{idpSetup: &idpSetup{issuer: c.issuer}}
	for r := range rounds {
		jar, _ := cookiejar.New(nil)
		b := &browser{t: t, client: &http.Client{Jar: jar, Transport: c.transport(0, nil, nil), Timeout: 20 * time.Second}}
		if _, _, echo := s.visit(t, b, c.app+"/hello", nil); echo == nil {
			t.Fatalf("round %d: sign-in failed", r)
		}
		ck := b.cookie(c.app, "gatehouse-gate")
		at := func(i int) int {
			req, _ := http.NewRequest(http.MethodGet, c.app+"/hello", nil)
			req.Header.Set("Accept", "application/json")
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
			resp, err := (&http.Client{Transport: c.transport(i, nil, nil)}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for i := 1; i < len(c.caddies); i++ {
			if at(i) != http.StatusOK { // warms that instance's cache
				t.Fatalf("round %d: instance %d refuses the session", r, i)
			}
		}
		// Sign out at the first instance's gate (same-origin navigation).
		start := time.Now()
		if resp, _ := sameOriginGet(t, b, c.app+"/.gatehouse/logout"); resp.StatusCode >= 500 {
			t.Fatalf("round %d: sign-out: %d", r, resp.StatusCode)
		}
		for i := 1; i < len(c.caddies); i++ {
			for at(i) != http.StatusUnauthorized {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("round %d: instance %d still lets the session in", r, i)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("logout on one instance seen by the other two: p50 %v, p99 %v, max %v over %d logouts",
		took[rounds/2].Round(time.Millisecond), took[rounds*99/100].Round(time.Millisecond), took[rounds-1].Round(time.Millisecond), rounds)
}
