package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"github.com/gatehouse-idp/gatehouse/chain"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The provider's back-channel logout ends the local sessions that came
// from the remote session it names (sid), or with only sub every one
// that came through the module; a token that does not verify — another
// key, audience or issuer, a nonce, no events, too old, an ID token,
// a replay — ends nothing and is audited.
func TestBackchannelLogout(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "create"})
	endpoint := v.srv.URL + "/login/m/Corp/backchannel_logout"
	signIn := func(sid string) *http.Client {
		b := v.browser()
		if _, body := v.viaCorp(b, "", map[string]any{"sub": "corp-1", "sid": sid}); !strings.HasPrefix(body, "DONE ") {
			t.Fatalf("sign-in: %s", body)
		}
		return b
	}
	send := func(token string) (int, string) {
		return v.post(v.browser(), endpoint, url.Values{"logout_token": {token}})
	}
	b1, b2 := signIn("remote-1"), signIn("remote-2")
	// A password session of the same account is not from the provider.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := map[string]func(c map[string]any) string{
		"other key":      func(c map[string]any) string { return signWith(t, other, "k1", c, "logout+jwt") },
		"other audience": func(c map[string]any) string { c["aud"] = "x"; return v.op.sign(c, "logout+jwt") },
		"other issuer":   func(c map[string]any) string { c["iss"] = "https://evil.example"; return v.op.sign(c, "logout+jwt") },
		"nonce":          func(c map[string]any) string { c["nonce"] = "n"; return v.op.sign(c, "logout+jwt") },
		"no events":      func(c map[string]any) string { delete(c, "events"); return v.op.sign(c, "logout+jwt") },
		"events not object": func(c map[string]any) string {
			c["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": "yes"}
			return v.op.sign(c, "logout+jwt")
		},
		"too old": func(c map[string]any) string {
			c["iat"] = v.clk.now().Add(-time.Hour).Unix()
			return v.op.sign(c, "logout+jwt")
		},
		"expired": func(c map[string]any) string {
			c["exp"] = v.clk.now().Add(-time.Second).Unix()
			return v.op.sign(c, "logout+jwt")
		},
		"no jti":   func(c map[string]any) string { delete(c, "jti"); return v.op.sign(c, "logout+jwt") },
		"id token": func(c map[string]any) string { return v.op.sign(c, "JWT") },
		"unsigned": func(c map[string]any) string {
			parts := strings.Split(v.op.sign(c, "logout+jwt"), ".")
			return "eyJhbGciOiJub25lIn0." + parts[1] + "."
		},
		"garbage":  func(map[string]any) string { return "not.a.jwt" },
		"oversize": func(map[string]any) string { return strings.Repeat("a", 20<<10) },
	}
	for name, mk := range bad {
		if st, body := send(mk(v.op.logoutToken("corp-1", "remote-1"))); st != http.StatusBadRequest || !strings.Contains(body, `"error":"invalid_request"`) {
			t.Fatalf("%s: %d %s", name, st, body)
		}
	}
	if v.session(b1) == nil || v.session(b2) == nil {
		t.Fatal("a refused token ended a session")
	}
	if n := strings.Count(v.trail.String(), `"event":"logout_token_refused"`); n != len(bad) {
		t.Fatalf("%d refusals audited", n)
	}
	if st, _ := v.get(v.browser(), endpoint); st != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", st)
	}

	// sid remote-1: b1's session ends, b2's stays.
	tok := v.op.sign(v.op.logoutToken("corp-1", "remote-1"), "logout+jwt")
	if st, body := send(tok); st != http.StatusOK {
		t.Fatalf("logout: %d %s", st, body)
	}
	if v.session(b1) != nil || v.session(b2) == nil {
		t.Fatal("sid logout ended the wrong sessions")
	}
	if st, _ := send(tok); st != http.StatusBadRequest {
		t.Fatalf("replayed token: %d", st)
	}
	// Only the sid: found through the sign-in that had it.
	b3 := signIn("remote-3")
	if st, _ := send(v.op.sign(v.op.logoutToken("", "remote-3"), "logout+jwt")); st != http.StatusOK || v.session(b3) != nil || v.session(b2) == nil {
		t.Fatalf("sid-only logout: %d", st)
	}
	// Only the sub: every session from the provider ends.
	b4 := signIn("remote-4")
	if st, _ := send(v.op.sign(v.op.logoutToken("corp-1", ""), "logout+jwt")); st != http.StatusOK || v.session(b2) != nil || v.session(b4) != nil {
		t.Fatalf("sub logout: %d", st)
	}
	if !strings.Contains(v.trail.String(), `"event":"upstream_logout"`) {
		t.Fatalf("trail:\n%s", v.trail)
	}
}

// A provider that is down is not asked again at every request: a
// failed discovery waits before the next.
func TestDiscoveryFailureIsNotRetriedAtOnce(t *testing.T) {
	var hits atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	v := newEnv(t, map[string]any{"issuer": down.URL})
	endpoint := v.srv.URL + "/login/m/Corp/backchannel_logout"
	for range 5 {
		if st, _ := v.post(v.browser(), endpoint, url.Values{"logout_token": {v.op.sign(v.op.logoutToken("s", ""), "logout+jwt")}}); st != http.StatusServiceUnavailable {
			t.Fatalf("status %d", st)
		}
	}
	if n := hits.Load(); n != 1 || strings.Contains(v.trail.String(), "logout_token_refused") {
		t.Fatalf("discovery asked %d times", n)
	}
	v.clk.add(11 * time.Second)
	v.post(v.browser(), endpoint, url.Values{"logout_token": {v.op.sign(v.op.logoutToken("s", ""), "logout+jwt")}})
	if n := hits.Load(); n != 2 {
		t.Fatalf("discovery asked %d times after the wait", n)
	}
}

// logout_upstream offers the provider's end_session_endpoint (with our
// client_id) after a sign-out of a session that came through it.
func TestUpstreamLogoutURL(t *testing.T) {
	for _, on := range []bool{false, true} {
		v := newEnv(t, map[string]any{"accounts": "create", "logout_upstream": on})
		b := v.browser()
		v.viaCorp(b, "", map[string]any{"sub": "corp-1"})
		got := v.e.UpstreamLogouts(context.Background(), v.session(b).Passed)
		want := []chain.Upstream{{Name: "Corp IdP", URL: v.op.URL + "/logout?client_id=gatehouse&ui=1"}}
		if !on {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("logout_upstream %v: %+v", on, got)
		}
	}
}
