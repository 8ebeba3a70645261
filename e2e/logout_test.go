package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// receiver is a back-channel logout endpoint that checks every logout
// token against the IdP's JWKS, the way a relying party must.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	issuer  string
	mu      sync.Mutex
	tokens  map[string][]map[string]any // path -> verified claims
	jtis    map[string]bool
	refuse  atomic.Bool // answer 503 (receiver down)
	invalid []string
}

func newReceiver(t *testing.T, issuer string) *receiver {
	rc := &receiver{t: t, issuer: issuer, tokens: map[string][]map[string]any{}, jtis: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	if rc.refuse.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	claims, err := rc.verify(r.PostFormValue("logout_token"))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.invalid = append(rc.invalid, r.URL.Path+": "+err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.tokens[r.URL.Path] = append(rc.tokens[r.URL.Path], claims)
}

func (rc *receiver) verify(raw string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, err
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); typ != "logout+jwt" {
		return nil, fmt.Errorf("typ %q", typ)
	}
	c := &http.Client{Transport: loopbackTransport()}
	resp, err := c.Get(rc.issuer + "/jwks")
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		return nil, fmt.Errorf("kid %q not in JWKS", tok.Headers[0].KeyID)
	}
	var std jwt.Claims
	claims := map[string]any{}
	if err := tok.Claims(keys[0].Key, &std, &claims); err != nil {
		return nil, err
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: rc.issuer, Time: time.Now()}, time.Minute); err != nil {
		return nil, err
	}
	ev, _ := claims["events"].(map[string]any)
	if _, ok := ev["http://schemas.openid.net/event/backchannel-logout"]; !ok {
		return nil, fmt.Errorf("no back-channel event: %v", claims["events"])
	}
	if _, ok := claims["nonce"]; ok {
		return nil, fmt.Errorf("logout token with a nonce")
	}
	if claims["sid"] == nil && claims["sub"] == nil {
		return nil, fmt.Errorf("neither sid nor sub")
	}
	jti, _ := claims["jti"].(string)
	rc.mu.Lock()
	seen := rc.jtis[jti]
	rc.jtis[jti] = true
	rc.mu.Unlock()
	if jti == "" || seen {
		return nil, fmt.Errorf("jti %q missing or replayed", jti)
	}
	return claims, nil
}

func (rc *receiver) got(path string) []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.tokens[path]...)
}

// waitFor polls until path received n tokens (at most 20s).
func (rc *receiver) waitFor(path string, n int) []map[string]any {
	rc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got := rc.got(path); len(got) >= n {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	rc.t.Fatalf("%s received %d logout tokens, want %d (invalid: %v)", path, len(rc.got(path)), n, rc.invalid)
	return nil
}

const logoutCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		client one {
			first_party
			secret one-secret
			redirect_uri http://one.localhost/callback
			post_logout_redirect_uri http://one.localhost/bye
			backchannel_logout_uri %[4]s/one
		}
		client two {
			first_party
			secret two-secret
			redirect_uri http://two.localhost/callback
			backchannel_logout_uri %[4]s/two
		}
	}
}

%[1]s {
	gatehouse_idp
}

%[2]s {
	gatehouse_gate {
		upstream_logout %[4]s/upstream
	}
	reverse_proxy %[5]s
}

%[3]s {
	gatehouse_gate
	reverse_proxy %[5]s
}
`

type logoutSetup struct {
	*gateSetup
	rc *receiver
}

func newLogoutSetup(t *testing.T) *logoutSetup {
	up := echoUpstream(t)
	s := &gateSetup{idpSetup: &idpSetup{authPort: freePort(t)}}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.app = fmt.Sprintf("http://app.localhost:%d", freePort(t))
	s.wiki = fmt.Sprintf("http://wiki.localhost:%d", freePort(t))
	rc := newReceiver(t, s.issuer)
	s.caddy = startCaddy(t, fmt.Sprintf(logoutCaddyfile, s.issuer, s.app, s.wiki, rc.srv.URL, strings.TrimPrefix(up.URL, "http://")))
	s.addUser(t, "alice", "correct horse battery")
	return &logoutSetup{gateSetup: s, rc: rc}
}

// clientLogin signs in to client id in b (SSO) and returns its ID token.
func (s *logoutSetup) clientLogin(t *testing.T, b *browser, id string) string {
	t.Helper()
	ctx := oidc.ClientContext(t.Context(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: id, ClientSecret: id + "-secret", Endpoint: p.Endpoint(),
		RedirectURL: "http://" + id + ".localhost/callback", Scopes: []string{"openid"}}
	v := oauth2.GenerateVerifier()
	s.appHost = id + ".localhost"
	q := s.authorize(t, b, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v)), "alice", "correct horse battery")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	return tok.Extra("id_token").(string)
}

func TestLogoutEverywhere(t *testing.T) {
	s := newLogoutSetup(t)
	b := newBrowser(t, "one.localhost", "two.localhost")
	idt := s.clientLogin(t, b, "one")
	s.clientLogin(t, b, "two")
	for _, site := range []string{s.app, s.wiki} {
		if _, _, echo := s.visit(t, b, site+"/", nil); echo == nil || echo["Remote-User"] != "alice" {
			t.Fatalf("%s: not signed in", site)
		}
	}
	appCookie, wikiCookie := b.cookie(s.app, "gatehouse-gate"), b.cookie(s.wiki, "gatehouse-gate")

	// Bad logout requests are refused with a page, no redirect.
	for name, q := range map[string]url.Values{
		"forged hint":        {"id_token_hint": {idt[:len(idt)-4] + "AAAA"}},
		"unregistered uri":   {"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://evil.localhost/"}},
		"uri without client": {"post_logout_redirect_uri": {"http://one.localhost/bye"}},
		"client mismatch":    {"id_token_hint": {idt}, "client_id": {"two"}},
	} {
		resp, _ := b.get(s.issuer + "/logout?" + q.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Host != strings.TrimPrefix(s.issuer, "http://") {
			t.Errorf("%s: %d at %s", name, resp.StatusCode, resp.Request.URL)
		}
	}
	// Without a hint the person is asked first.
	resp, page := b.get(s.issuer + "/logout")
	if resp.StatusCode != 200 || !strings.Contains(page, "Do you want to sign out") {
		t.Fatalf("logout without hint: %d", resp.StatusCode)
	}

	// Logout at client one, tied to the session by its ID token.
	b.client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if r.URL.Host == "one.localhost" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, _ = b.get(s.issuer + "/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://one.localhost/bye"}, "state": {"s1"}}.Encode())
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://one.localhost/bye?state=s1" {
		t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Every client got a valid logout token for the session.
	one, two := s.rc.waitFor("/one", 1), s.rc.waitFor("/two", 1)
	if one[0]["aud"] != "one" || two[0]["aud"] != "two" || one[0]["sid"] != two[0]["sid"] || one[0]["sid"] == nil {
		t.Fatalf("tokens: %v %v", one, two)
	}
	// The legacy app behind the gate heard of it too.
	up := s.rc.waitFor("/upstream", 1)
	if up[0]["aud"] != s.app || up[0]["sid"] != one[0]["sid"] {
		t.Fatalf("upstream token: %v", up[0])
	}
	// Both gates refuse the old cookies.
	for site, ck := range map[string]*http.Cookie{s.app: appCookie, s.wiki: wikiCookie} {
		req, _ := http.NewRequest(http.MethodGet, site+"/", nil)
		req.Header.Set("Accept", "application/json")
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		r, err := (&http.Client{Transport: loopbackTransport()}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s after logout: %d", site, r.StatusCode)
		}
	}
	// And the IdP asks for a login again.
	resp, page = newBrowser(t).get(s.app + "/")
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
}

func TestLogoutDeliverySurvivesRestart(t *testing.T) {
	s := newLogoutSetup(t)
	b := newBrowser(t, "one.localhost", "two.localhost")
	s.clientLogin(t, b, "two")
	s.rc.refuse.Store(true) // the client is down
	out, err := s.caddy.cli("", "session", "revoke", "--user", "alice")
	if err != nil || !strings.Contains(out, "1 sessions ended") {
		t.Fatalf("revoke: %v %s", err, out)
	}
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt
	s.caddy.stop()
	s.rc.refuse.Store(false)
	s.caddy.start()
	got := s.rc.waitFor("/two", 1)
	if got[0]["aud"] != "two" {
		t.Fatalf("token after restart: %v", got[0])
	}
	// The admin API counts deliveries (since this start) and the queue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + s.caddy.admin + "/gatehouse/logout-deliveries")
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]int
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st["delivered"] == 1 && st["queued"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery stats %v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(s.caddy.log.String(), "will retry") {
		t.Fatal("no failed attempt before the restart: the test did not test a retry across a restart")
	}
}
