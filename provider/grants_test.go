package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/users"
)

// grantTokens signs alice in for client conf and redeems the code.
func (e *env) grantTokens(q url.Values) map[string]any {
	e.t.Helper()
	b := e.browser()
	cb := e.login(b, q)
	resp, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	if resp.StatusCode != 200 {
		e.t.Fatalf("code grant: %d %v", resp.StatusCode, tok)
	}
	return tok
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

func (e *env) refresh(rt, client, secret string) (int, map[string]any) {
	e.t.Helper()
	resp, tok := e.token(refreshForm(rt), client, secret)
	return resp.StatusCode, tok
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func TestRefreshRotatesAndReuseRevokesTheFamily(t *testing.T) {
	e := newEnv(t, "")
	tok := e.grantTokens(authParams("conf"))
	rt1, at1 := str(tok, "refresh_token"), str(tok, "access_token")
	if rt1 == "" {
		t.Fatalf("no refresh token: %v", tok)
	}
	_, first := e.idTokenParts(str(tok, "id_token"), jose.RS256, "conf")

	status, next := e.refresh(rt1, "conf", confSecret)
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, next)
	}
	rt2, at2 := str(next, "refresh_token"), str(next, "access_token")
	if rt2 == "" || rt2 == rt1 || at2 == "" || at2 == at1 {
		t.Fatalf("refresh did not rotate: %v", next)
	}
	if next["scope"] != tok["scope"] {
		t.Errorf("scope changed on refresh: %v -> %v", tok["scope"], next["scope"])
	}
	_, again := e.idTokenParts(str(next, "id_token"), jose.RS256, "conf")
	for _, k := range []string{"sub", "auth_time", "sid", "acr"} {
		if again[k] != first[k] {
			t.Errorf("refreshed ID token %s = %v, first had %v", k, again[k], first[k])
		}
	}
	if _, ok := again["nonce"]; ok {
		t.Error("a refreshed ID token must not carry the nonce")
	}
	if resp, _ := e.userinfo(at2); resp.StatusCode != 200 {
		t.Fatalf("new access token: %d", resp.StatusCode)
	}

	// The old refresh token again: the family is revoked, every token of
	// it with it.
	status, reuse := e.refresh(rt1, "conf", confSecret)
	if status != 400 || reuse["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", status, reuse)
	}
	if status, out := e.refresh(rt2, "conf", confSecret); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("current token after reuse: %d %v", status, out)
	}
	for name, at := range map[string]string{"first": at1, "second": at2} {
		if resp, _ := e.userinfo(at); resp.StatusCode != 401 {
			t.Errorf("%s access token after reuse: %d", name, resp.StatusCode)
		}
	}
}

func TestRefreshTokenIsBoundToItsClient(t *testing.T) {
	e := newEnv(t, "")
	rt := str(e.grantTokens(authParams("conf")), "refresh_token")
	form := refreshForm(rt)
	form.Set("client_id", "post")
	form.Set("client_secret", "post-secret")
	if resp, out := e.token(form, "", ""); resp.StatusCode != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("another client's refresh token: %d %v", resp.StatusCode, out)
	}
	// Presented by the wrong client, it is not burnt for the right one.
	if status, out := e.refresh(rt, "conf", confSecret); status != 200 {
		t.Fatalf("own refresh token after another client tried it: %d %v", status, out)
	}
	// Nor does a wrong secret get anywhere near it.
	if status, out := e.refresh(rt, "conf", "wrong"); status != 401 || out["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", status, out)
	}
}

func TestRefreshScopeCanOnlyNarrow(t *testing.T) {
	e := newEnv(t, "")
	rt := str(e.grantTokens(with(authParams("conf"), "scope", "openid email")), "refresh_token")
	form := refreshForm(rt)
	form.Set("scope", "openid profile")
	if resp, out := e.token(form, "conf", confSecret); resp.StatusCode != 400 || out["error"] != "invalid_scope" {
		t.Fatalf("widening scope: %d %v", resp.StatusCode, out)
	}
	form.Set("scope", "email")
	resp, out := e.token(form, "conf", confSecret)
	if resp.StatusCode != 200 || out["scope"] != "email" || out["id_token"] != nil {
		t.Fatalf("narrowed to email: %d %v", resp.StatusCode, out)
	}
	// Narrowing once does not narrow the grant.
	if status, out := e.refresh(str(out, "refresh_token"), "conf", confSecret); status != 200 || out["scope"] != "openid email" {
		t.Fatalf("after narrowing: %d %v", status, out)
	}
}

func TestOnlineRefreshEndsWithSessionAndUser(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	tok := e.grantTokens(authParams("conf"))
	_, claims := e.idTokenParts(str(tok, "id_token"), jose.RS256, "conf")
	if err := e.logout.End(ctx, claims["sid"].(string), logout.ByAdmin); err != nil {
		t.Fatal(err)
	}
	if status, out := e.refresh(str(tok, "refresh_token"), "conf", confSecret); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("refresh after the session ended: %d %v", status, out)
	}

	tok = e.grantTokens(authParams("conf"))
	if _, err := e.users.Update(ctx, e.alice.Subject, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if status, out := e.refresh(str(tok, "refresh_token"), "conf", confSecret); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("refresh of a disabled user: %d %v", status, out)
	}
}

func TestRefreshLifetimes(t *testing.T) {
	e := newEnv(t, "", func(c *provider.Config) {
		c.RefreshTokenIdle = time.Hour
		c.RefreshTokenLifetime = 3 * time.Hour
	})
	rt := str(e.grantTokens(authParams("conf")), "refresh_token")
	// Used every 50 minutes it lives to its absolute end, not longer.
	for i := range 3 {
		e.clock.Advance(50 * time.Minute)
		status, out := e.refresh(rt, "conf", confSecret)
		if status != 200 {
			t.Fatalf("refresh %d: %d %v", i, status, out)
		}
		rt = str(out, "refresh_token")
	}
	e.clock.Advance(40 * time.Minute) // 3h10m after the grant
	if status, out := e.refresh(rt, "conf", confSecret); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("after the absolute lifetime: %d %v", status, out)
	}
	// Unused longer than the idle time, it is gone.
	rt = str(e.grantTokens(authParams("conf")), "refresh_token")
	e.clock.Advance(61 * time.Minute)
	if status, out := e.refresh(rt, "conf", confSecret); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("after the idle time: %d %v", status, out)
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, "")
	cc := func(client, secret, scope string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			form.Set("scope", scope)
		}
		resp, out := e.token(form, client, secret)
		return resp.StatusCode, out
	}
	status, out := cc("svc", "svc-secret", "reports:read")
	if status != 200 || out["scope"] != "reports:read" || out["refresh_token"] != nil || out["id_token"] != nil {
		t.Fatalf("client_credentials: %d %v", status, out)
	}
	at := str(out, "access_token")
	// A client's own token is nobody's: userinfo refuses it.
	if resp, body := e.userinfo(at); resp.StatusCode != 403 || body["error"] != "insufficient_scope" {
		t.Errorf("userinfo with a client token: %d %v", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		name, client, secret, scope string
		status                      int
		err                         string
	}{
		{"scope not allowed", "svc", "svc-secret", "reports:delete", 400, "invalid_scope"},
		{"openid has no user", "svc", "svc-secret", "openid", 400, "invalid_scope"},
		{"offline_access has no user", "svc", "svc-secret", "reports:read offline_access", 400, "invalid_scope"},
		{"user scope", "svc", "svc-secret", "email", 400, "invalid_scope"},
		{"wrong secret", "svc", "nope", "", 401, "invalid_client"},
		{"client not allowed the grant", "conf", confSecret, "", 400, "unauthorized_client"},
	} {
		if status, out := cc(tc.client, tc.secret, tc.scope); status != tc.status || out["error"] != tc.err {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, out, tc.status, tc.err)
		}
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"spa"}}
	if resp, out := e.token(form, "", ""); resp.StatusCode != 400 || out["error"] != "unauthorized_client" {
		t.Errorf("public client: %d %v", resp.StatusCode, out)
	}
}

func (e *env) introspect(tok, client, secret string) map[string]any {
	e.t.Helper()
	resp, out := e.postForm("/introspect", url.Values{"token": {tok}}, client, secret)
	if resp.StatusCode != 200 {
		e.t.Fatalf("introspect: %d %v", resp.StatusCode, out)
	}
	return out
}

func TestIntrospection(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	tok := e.grantTokens(authParams("conf"))
	at, rt := str(tok, "access_token"), str(tok, "refresh_token")
	_, claims := e.idTokenParts(str(tok, "id_token"), jose.RS256, "conf")

	got := e.introspect(at, "conf", confSecret)
	if got["active"] != true || got["client_id"] != "conf" || got["sub"] != claims["sub"] || got["username"] != "alice" ||
		got["token_type"] != "Bearer" || got["scope"] != tok["scope"] || got["iss"] != e.issuer || got["sid"] != claims["sid"] {
		t.Errorf("own access token: %v", got)
	}
	if exp, _ := got["exp"].(float64); int64(exp) != e.clock.Now().Add(15*time.Minute).Unix() {
		t.Errorf("exp %v", got["exp"])
	}
	if got := e.introspect(rt, "conf", confSecret); got["active"] != true || got["client_id"] != "conf" || got["token_type"] != nil {
		t.Errorf("own refresh token: %v", got)
	}
	// Another client learns nothing; a resource server learns everything.
	if resp, got := e.postForm("/introspect", url.Values{"token": {at}, "client_id": {"post"}, "client_secret": {"post-secret"}}, "", ""); resp.StatusCode != 200 || len(got) != 1 || got["active"] != false {
		t.Errorf("another client: %v", got)
	}
	if got := e.introspect(rt, "rs", "rs-secret"); len(got) != 1 || got["active"] != false {
		t.Errorf("resource server on a refresh token: %v", got)
	}
	if got := e.introspect(at, "rs", "rs-secret"); got["active"] != true || got["client_id"] != "conf" {
		t.Errorf("resource server: %v", got)
	}
	for _, bad := range []string{"", "nonsense", "a.b", at + "x"} {
		if bad == "" {
			if resp, out := e.postForm("/introspect", url.Values{}, "conf", confSecret); resp.StatusCode != 400 || out["error"] != "invalid_request" {
				t.Errorf("no token: %d %v", resp.StatusCode, out)
			}
			continue
		}
		if got := e.introspect(bad, "conf", confSecret); got["active"] != false {
			t.Errorf("%q: %v", bad, got)
		}
	}
	if resp, out := e.postForm("/introspect", url.Values{"token": {at}}, "conf", "wrong"); resp.StatusCode != 401 || out["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", resp.StatusCode, out)
	}
	if resp, out := e.postForm("/introspect", url.Values{"token": {at}}, "", ""); resp.StatusCode != 401 {
		t.Errorf("no client: %d %v", resp.StatusCode, out)
	}
	// A client's own token.
	_, cc := e.token(url.Values{"grant_type": {"client_credentials"}, "scope": {"reports:read"}}, "svc", "svc-secret")
	if got := e.introspect(str(cc, "access_token"), "rs", "rs-secret"); got["active"] != true || got["sub"] != "svc" || got["username"] != nil {
		t.Errorf("client_credentials token: %v", got)
	}
	// Ended session: inactive, access and refresh alike.
	if err := e.logout.End(ctx, claims["sid"].(string), logout.ByAdmin); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"access": at, "refresh": rt} {
		if got := e.introspect(tok, "conf", confSecret); got["active"] != false {
			t.Errorf("%s token of an ended session: %v", name, got)
		}
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, "")
	revoke := func(tok, client, secret string) (int, map[string]any) {
		resp, out := e.postForm("/revoke", url.Values{"token": {tok}}, client, secret)
		return resp.StatusCode, out
	}
	tok := e.grantTokens(authParams("conf"))
	at, rt := str(tok, "access_token"), str(tok, "refresh_token")
	if status, out := revoke(at, "svc", "svc-secret"); status != 400 || out["error"] != "unauthorized_client" {
		t.Errorf("another client's token: %d %v", status, out)
	}
	if status, _ := revoke(at, "conf", confSecret); status != 200 {
		t.Fatalf("revoke access token: %d", status)
	}
	if resp, _ := e.userinfo(at); resp.StatusCode != 401 {
		t.Errorf("revoked access token still works: %d", resp.StatusCode)
	}
	if status, out := e.refresh(rt, "conf", confSecret); status != 200 {
		t.Fatalf("revoking an access token ended its refresh token: %d %v", status, out)
	} else {
		at, rt = str(out, "access_token"), str(out, "refresh_token")
	}
	// Revoking the refresh token ends the grant: its access tokens too.
	if status, _ := revoke(rt, "conf", confSecret); status != 200 {
		t.Fatalf("revoke refresh token: %d", status)
	}
	if resp, _ := e.userinfo(at); resp.StatusCode != 401 {
		t.Errorf("access token of a revoked grant: %d", resp.StatusCode)
	}
	if status, out := e.refresh(rt, "conf", confSecret); status != 400 {
		t.Errorf("revoked refresh token: %d %v", status, out)
	}
	// Unknown and already revoked: 200, nothing to say (RFC 7009 §2.2).
	for _, tok := range []string{rt, at, "nonsense", "aaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"} {
		if status, _ := revoke(tok, "conf", confSecret); status != 200 {
			t.Errorf("revoke %q: %d", tok, status)
		}
	}
	if status, _ := revoke(at, "conf", "wrong"); status != 401 {
		t.Errorf("wrong secret: %d", status)
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/revoke?token="+at, nil)
	if resp, _ := doJSON(t, req); resp.StatusCode != 405 {
		t.Errorf("GET revoke: %d", resp.StatusCode)
	}
}
