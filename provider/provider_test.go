package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/users"
)

func TestAuthorizeErrorsShownToPerson(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name   string
		mutate func(url.Values)
		status int
		want   string
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, 400, "not registered"},
		{"missing client", func(q url.Values) { q.Del("client_id") }, 400, "client_id"},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, 400, "has not registered"},
		{"redirect_uri with trailing slash", func(q url.Values) { q.Set("redirect_uri", redirectURI+"/") }, 400, "has not registered"},
		{"redirect_uri case differs", func(q url.Values) { q.Set("redirect_uri", "https://APP.example/callback") }, 400, "has not registered"},
		{"redirect_uri missing", func(q url.Values) { q.Del("redirect_uri") }, 400, "has not registered"},
		{"redirect_uri repeated", func(q url.Values) { q.Add("redirect_uri", redirectURI) }, 400, "client_id or redirect_uri"},
		{"oversized client_id", func(q url.Values) { q.Set("client_id", strings.Repeat("a", 3000)) }, 400, "client_id"},
		{"oversized query", func(q url.Values) { q.Set("x", strings.Repeat("a", 17<<10)) }, 414, "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams("conf")
			tc.mutate(q)
			resp, page := e.browser().get(e.authURL(q))
			if resp.StatusCode != tc.status || !strings.Contains(page, tc.want) {
				t.Fatalf("status %d, want %d with %q:\n%s", resp.StatusCode, tc.status, tc.want, page)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Request.URL.Host == "app.example" {
				t.Fatal("not an error page at the IdP")
			}
		})
	}
}

func TestAuthorizeErrorsRedirected(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name   string
		client string
		mutate func(url.Values)
		err    string
	}{
		{"unsupported response_type", "conf", func(q url.Values) { q.Set("response_type", "code device") }, "unsupported_response_type"},
		{"response_type not allowed for the client", "conf", func(q url.Values) { q.Set("response_type", "none") }, "unauthorized_client"},
		{"missing response_type", "conf", func(q url.Values) { q.Del("response_type") }, "invalid_request"},
		{"unknown response_mode", "conf", func(q url.Values) { q.Set("response_mode", "jwt") }, "invalid_request"},
		{"no openid scope", "conf", func(q url.Values) { q.Set("scope", "profile") }, "invalid_scope"},
		{"public client without PKCE", "spa", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"PKCE plain", "conf", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"PKCE method missing", "conf", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"PKCE unknown method", "conf", func(q url.Values) { q.Set("code_challenge_method", "S512") }, "invalid_request"},
		{"PKCE method without challenge", "conf", func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"malformed challenge", "conf", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request"},
		{"repeated parameter", "conf", func(q url.Values) { q.Add("scope", "openid") }, "invalid_request"},
		{"oversized parameter", "conf", func(q url.Values) { q.Set("nonce", strings.Repeat("n", 3000)) }, "invalid_request"},
		{"malformed request object", "conf", func(q url.Values) { q.Set("request", "eyJ...") }, "invalid_request_object"},
		{"unregistered request_uri", "conf", func(q url.Values) { q.Set("request_uri", "https://x") }, "invalid_request_uri"},
		{"bad prompt", "conf", func(q url.Values) { q.Set("prompt", "bogus") }, "invalid_request"},
		{"prompt none with login", "conf", func(q url.Values) { q.Set("prompt", "none login") }, "invalid_request"},
		{"prompt none without session", "conf", func(q url.Values) { q.Set("prompt", "none") }, "login_required"},
		{"negative max_age", "conf", func(q url.Values) { q.Set("max_age", "-1") }, "invalid_request"},
		{"max_age not a number", "conf", func(q url.Values) { q.Set("max_age", "1h") }, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(tc.client)
			tc.mutate(q)
			resp, page := e.browser().get(e.authURL(q))
			cb := callbackQuery(t, resp, page)
			if cb.Get("error") != tc.err || cb.Get("iss") != e.issuer || cb.Get("code") != "" {
				t.Fatalf("callback %v, want error %s with iss", cb, tc.err)
			}
			if tc.name != "repeated parameter" && cb.Get("state") != "st-1" {
				t.Fatalf("state not returned: %v", cb)
			}
		})
	}
}

func TestCodeFlowAndClaims(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			b := e.browser()
			cb := e.login(b, authParams("conf"))
			if cb.Get("state") != "st-1" || cb.Get("iss") != e.issuer {
				t.Fatalf("callback %v", cb)
			}
			resp, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
			if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("token: %d %v", resp.StatusCode, tok)
			}
			if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(900) || tok["scope"] != "openid profile email" {
				t.Fatalf("token response %v", tok)
			}
			claims := e.verifyIDToken(tok["id_token"].(string), alg)
			at := tok["access_token"].(string)
			sum := sha256.Sum256([]byte(at))
			want := map[string]any{
				"iss": e.issuer, "sub": e.alice.Subject, "aud": "conf", "nonce": "n-1", "acr": "1",
				"at_hash": base64.RawURLEncoding.EncodeToString(sum[:16]), "email": "alice@example.com",
				"email_verified": true, "name": "Alice Example", "preferred_username": "alice",
			}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("claim %s = %v, want %v", k, claims[k], v)
				}
			}
			if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
				t.Errorf("amr %v", claims["amr"])
			}
			now := float64(e.clock.Now().Unix())
			if claims["iat"] != now || claims["exp"] != now+900 || claims["auth_time"] != now || claims["sid"] == "" {
				t.Errorf("times/sid: %v", claims)
			}
			if _, ok := claims["groups"]; ok {
				t.Error("groups claim without the groups scope")
			}

			resp, ui := e.userinfo(at)
			if resp.StatusCode != 200 || ui["sub"] != e.alice.Subject || ui["email"] != "alice@example.com" || ui["acr"] != "1" {
				t.Fatalf("userinfo %d %v", resp.StatusCode, ui)
			}
		})
	}
}

func TestScopesLimitClaims(t *testing.T) {
	e := newEnv(t, "")
	q := authParams("conf")
	q.Set("scope", "openid groups unknownscope")
	cb := e.login(e.browser(), q)
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	if tok["scope"] != "openid groups" {
		t.Fatalf("granted scope %v", tok["scope"])
	}
	claims := e.verifyIDToken(tok["id_token"].(string), "RS256")
	for _, k := range []string{"email", "name", "preferred_username"} {
		if _, ok := claims[k]; ok {
			t.Errorf("claim %s without its scope", k)
		}
	}
	if g, _ := claims["groups"].([]any); len(g) != 1 || g[0] != "staff" {
		t.Errorf("groups %v", claims["groups"])
	}
	_, ui := e.userinfo(tok["access_token"].(string))
	if _, ok := ui["email"]; ok || ui["groups"] == nil {
		t.Errorf("userinfo %v", ui)
	}
}

func (e *env) verifyIDToken(raw, alg string) map[string]any {
	e.t.Helper()
	resp, err := http.Get(e.issuer + "/jwks")
	if err != nil {
		e.t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		e.t.Fatalf("parse ID token: %v", err)
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); typ != "JWT" {
		e.t.Errorf("typ %q", typ)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q not in JWKS", tok.Headers[0].KeyID)
	}
	claims := map[string]any{}
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		e.t.Fatalf("signature: %v", err)
	}
	return claims
}

func TestClientAuthentication(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	newCode := func(client string) string { return e.login(b, authParams(client)).Get("code") }

	t.Run("client_secret_post", func(t *testing.T) {
		f := codeForm(newCode("post"))
		f.Set("client_id", "post")
		f.Set("client_secret", "post-secret")
		if resp, m := e.token(f, "", ""); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("post client refuses basic", func(t *testing.T) {
		if resp, m := e.token(codeForm(newCode("post")), "post", "post-secret"); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("default client accepts post too", func(t *testing.T) {
		f := codeForm(newCode("conf"))
		f.Set("client_id", "conf")
		f.Set("client_secret", confSecret)
		if resp, m := e.token(f, "", ""); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("public client with PKCE", func(t *testing.T) {
		f := codeForm(newCode("spa"))
		f.Set("client_id", "spa")
		if resp, m := e.token(f, "", ""); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	code := newCode("conf")
	cases := []struct {
		name             string
		form             url.Values
		user, pass       string
		status           int
		err, wwwAuthPart string
	}{
		{"wrong secret basic", codeForm(code), "conf", "wrong", 401, "invalid_client", "Basic"},
		{"wrong secret post", with(codeForm(code), "client_id", "conf", "client_secret", "wrong"), "", "", 401, "invalid_client", ""},
		{"unknown client", codeForm(code), "nobody", "x", 401, "invalid_client", "Basic"},
		{"no client authentication", codeForm(code), "", "", 401, "invalid_client", ""},
		{"confidential client without secret", with(codeForm(code), "client_id", "conf"), "", "", 401, "invalid_client", ""},
		{"basic and post together", with(codeForm(code), "client_secret", confSecret), "conf", confSecret, 400, "invalid_request", ""},
		{"public client with a secret", with(codeForm(code), "client_id", "spa", "client_secret", "x"), "", "", 401, "invalid_client", ""},
		{"client_id differs from basic", with(codeForm(code), "client_id", "post"), "conf", confSecret, 400, "invalid_request", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := e.token(tc.form, tc.user, tc.pass)
			if resp.StatusCode != tc.status || m["error"] != tc.err {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.err)
			}
			if tc.wwwAuthPart != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.wwwAuthPart) {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// None of the failures above spent the code.
	if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 200 {
		t.Fatalf("code unusable after failed client authentications: %d %v", resp.StatusCode, m)
	}
}

func with(f url.Values, kv ...string) url.Values {
	for i := 0; i < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

func TestTokenRequestErrors(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	code := e.login(b, authParams("conf")).Get("code")
	cases := []struct {
		name   string
		form   url.Values
		status int
		err    string
	}{
		{"missing grant_type", without(codeForm(code), "grant_type"), 400, "invalid_request"},
		{"unsupported grant_type", with(codeForm(code), "grant_type", "password"), 400, "unsupported_grant_type"},
		{"missing code", without(codeForm(code), "code"), 400, "invalid_request"},
		{"unknown code", with(codeForm(code), "code", "forged"), 400, "invalid_grant"},
		{"redirect_uri mismatch", with(codeForm(code), "redirect_uri", "https://app.example/cb?x=1"), 400, "invalid_grant"},
		{"missing redirect_uri", without(codeForm(code), "redirect_uri"), 400, "invalid_grant"},
		{"missing verifier", without(codeForm(code), "code_verifier"), 400, "invalid_grant"},
		{"wrong verifier", with(codeForm(code), "code_verifier", strings.Repeat("w", 43)), 400, "invalid_grant"},
		{"malformed verifier", with(codeForm(code), "code_verifier", "short"), 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := e.token(tc.form, "conf", confSecret)
			if resp.StatusCode != tc.status || m["error"] != tc.err || m["error_description"] == "" {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.err)
			}
		})
	}
	t.Run("repeated parameter", func(t *testing.T) {
		f := codeForm(code)
		f.Add("code", "again")
		if resp, m := e.token(f, "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/token?"+codeForm(code).Encode(), nil)
		resp, m := doJSON(t, req)
		if resp.StatusCode != 405 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(`{"grant_type":"authorization_code"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("conf", url.QueryEscape(confSecret))
		if resp, m := doJSON(t, req); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		f := with(codeForm(code), "padding", strings.Repeat("p", 70<<10))
		if resp, m := e.token(f, "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("code issued to another client", func(t *testing.T) {
		f := with(codeForm(code), "client_id", "post", "client_secret", "post-secret")
		if resp, m := e.token(f, "", ""); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	// After all of that, the rightful exchange still works.
	if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

func without(f url.Values, keys ...string) url.Values {
	for _, k := range keys {
		f.Del(k)
	}
	return f
}

func TestVerifierWithoutChallenge(t *testing.T) {
	e := newEnv(t, "")
	q := without(authParams("conf"), "code_challenge", "code_challenge_method")
	code := e.login(e.browser(), q).Get("code")
	if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	// A confidential client may skip PKCE altogether.
	code = e.login(e.browser(), q).Get("code")
	if resp, m := e.token(without(codeForm(code), "code_verifier"), "conf", confSecret); resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

func TestCodeReuseRevokesTokens(t *testing.T) {
	e := newEnv(t, "")
	code := e.login(e.browser(), authParams("conf")).Get("code")
	_, tok := e.token(codeForm(code), "conf", confSecret)
	at := tok["access_token"].(string)
	if resp, _ := e.userinfo(at); resp.StatusCode != 200 {
		t.Fatalf("fresh token refused: %d", resp.StatusCode)
	}
	resp, m := e.token(codeForm(code), "conf", confSecret)
	if resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v", resp.StatusCode, m)
	}
	if resp, m := e.userinfo(at); resp.StatusCode != 401 || m["error"] != "invalid_token" {
		t.Fatalf("token of a replayed code still works: %d %v", resp.StatusCode, m)
	}
	if status, m := e.refresh(tok["refresh_token"].(string), "conf", confSecret); status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh token of a replayed code still works: %d %v", status, m)
	}
}

func TestCodeExpires(t *testing.T) {
	e := newEnv(t, "")
	code := e.login(e.browser(), authParams("conf")).Get("code")
	e.clock.Advance(61 * time.Second)
	if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_grant" ||
		!strings.Contains(m["error_description"].(string), "expired") {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

func TestUserinfo(t *testing.T) {
	e := newEnv(t, "")
	code := e.login(e.browser(), authParams("conf")).Get("code")
	_, tok := e.token(codeForm(code), "conf", confSecret)
	at := tok["access_token"].(string)

	t.Run("POST form", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/userinfo", strings.NewReader(url.Values{"access_token": {at}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, m := doJSON(t, req); resp.StatusCode != 200 || m["sub"] != e.alice.Subject {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("no token", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		resp, _ := doJSON(t, req)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("forged token", func(t *testing.T) {
		resp, m := e.userinfo(at[:len(at)-2] + "xx")
		if resp.StatusCode != 401 || m["error"] != "invalid_token" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("basic scheme", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		req.SetBasicAuth("a", "b")
		if resp, _ := doJSON(t, req); resp.StatusCode != 401 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		e.users.Update(context.Background(), e.alice.Subject, func(u *users.User) error { u.Disabled = true; return nil })
		defer e.users.Update(context.Background(), e.alice.Subject, func(u *users.User) error { u.Disabled = false; return nil })
		if resp, m := e.userinfo(at); resp.StatusCode != 401 || m["error"] != "invalid_token" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		e.clock.Advance(16 * time.Minute)
		if resp, m := e.userinfo(at); resp.StatusCode != 401 || m["error"] != "invalid_token" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
}

func TestSingleSignOnAndPrompts(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.login(b, authParams("conf"))

	// Second authorization: straight to the client, no login page.
	resp, page := b.get(e.authURL(authParams("spa")))
	if cb := callbackQuery(t, resp, page); cb.Get("code") == "" {
		t.Fatalf("no SSO: %v", cb)
	}
	// prompt=none with a session also works.
	resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if cb := callbackQuery(t, resp, page); cb.Get("code") == "" {
		t.Fatalf("prompt=none with session: %v", cb)
	}
	// prompt=login and max_age=0 show the login page again.
	for _, q := range []url.Values{with(authParams("conf"), "prompt", "login"), with(authParams("conf"), "max_age", "0")} {
		resp, page = b.get(e.authURL(q))
		if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
			t.Fatalf("%v: no login page (%d)", q, resp.StatusCode)
		}
	}
	// max_age shorter than the session's age forces a login; longer does not.
	e.clock.Advance(10 * time.Minute)
	resp, page = b.get(e.authURL(with(authParams("conf"), "max_age", "3600")))
	if callbackQuery(t, resp, page).Get("code") == "" {
		t.Fatal("max_age=3600 asked again")
	}
	resp, page = b.get(e.authURL(with(authParams("conf"), "max_age", "60")))
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("max_age=60 on a 10-minute-old login: %d", resp.StatusCode)
	}
	f := loginForm(page)
	f.Set("username", "alice")
	f.Set("password", alicePassword)
	resp, page = b.post(e.issuer+"/login", f)
	code := callbackQuery(t, resp, page).Get("code")
	_, tok := e.token(codeForm(code), "conf", confSecret)
	claims := e.verifyIDToken(tok["id_token"].(string), "RS256")
	if claims["auth_time"] != float64(e.clock.Now().Unix()) {
		t.Fatalf("auth_time %v after re-login, want now", claims["auth_time"])
	}
	// A disabled user's session no longer signs in silently.
	e.users.Update(context.Background(), e.alice.Subject, func(u *users.User) error { u.Disabled = true; return nil })
	resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if cb := callbackQuery(t, resp, page); cb.Get("error") != "login_required" {
		t.Fatalf("disabled user: %v", cb)
	}
}

func TestTamperedCookieAndCSRF(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.login(b, authParams("conf"))
	u, _ := url.Parse(e.issuer)
	var tampered []*http.Cookie
	for _, c := range b.c.Jar.Cookies(u) {
		c.Value = c.Value[:len(c.Value)-4] + "AAAA"
		tampered = append(tampered, c)
	}
	b.c.Jar.SetCookies(u, tampered)
	resp, page := b.get(e.authURL(authParams("conf")))
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("tampered cookie: %d, want the login page", resp.StatusCode)
	}
	f := loginForm(page)
	f.Set("username", "alice")
	f.Set("password", alicePassword)
	for name, form := range map[string]url.Values{"missing": without(cloneValues(f), "csrf"), "wrong": with(cloneValues(f), "csrf", "AAAA")} {
		resp, page := b.post(e.issuer+"/login", form)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "security token") {
			t.Fatalf("CSRF %s: %d", name, resp.StatusCode)
		}
	}
	// Another browser cannot use this browser's form.
	resp, page = e.browser().post(e.issuer+"/login", f)
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form from another browser: %d", resp.StatusCode)
	}
	resp, page = b.post(e.issuer+"/login", f)
	if callbackQuery(t, resp, page).Get("code") == "" {
		t.Fatal("the real form failed")
	}
}

func cloneValues(v url.Values) url.Values { return url.Values(maps.Clone(v)) }

func kidOf(t *testing.T, raw string) string {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].KeyID
}

func TestUnknownPathIs404Page(t *testing.T) {
	e := newEnv(t, "")
	resp, page := e.browser().get(e.issuer + "/nope")
	if resp.StatusCode != 404 || !strings.Contains(page, "not found") && !strings.Contains(page, "Page not found") {
		t.Fatalf("%d %s", resp.StatusCode, page)
	}
}

func TestAcrRequests(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	// Voluntary unknown level: the login proceeds, acr says what was reached.
	cb := e.login(b, with(authParams("conf"), "acr_values", "9 1"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	if c := e.verifyIDToken(tok["id_token"].(string), "RS256"); c["acr"] != "1" {
		t.Fatalf("acr %v", c["acr"])
	}
	// Essential via the claims parameter, reachable.
	cb = e.login(b, with(authParams("conf"), "claims", `{"id_token":{"acr":{"essential":true,"values":["1"]}}}`))
	if cb.Get("code") == "" {
		t.Fatalf("essential reachable acr: %v", cb)
	}
	// Essential and unreachable: an error, not a weaker login.
	cb = e.login(b, with(authParams("conf"), "claims", `{"userinfo":{"acr":{"essential":true,"value":"9"}}}`))
	if cb.Get("error") != "access_denied" || cb.Get("code") != "" {
		t.Fatalf("essential unreachable acr: %v", cb)
	}
	// Malformed claims.
	resp, page := b.get(e.authURL(with(authParams("conf"), "claims", `{"id_token":`)))
	if cb := callbackQuery(t, resp, page); cb.Get("error") != "invalid_request" {
		t.Fatalf("malformed claims: %v", cb)
	}
}

var chooseLink = regexp.MustCompile(`<a class="button" href="([^"]+)">([^<]+)</a>`)

func TestSelectAccount(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.login(b, authParams("conf"))
	resp, page := b.get(e.authURL(with(authParams("conf"), "prompt", "select_account")))
	links := chooseLink.FindAllStringSubmatch(page, -1)
	if resp.StatusCode != 200 || len(links) != 2 || !strings.Contains(links[0][2], "Continue as Alice Example") {
		t.Fatalf("chooser: %d %v", resp.StatusCode, links)
	}
	base, _ := url.Parse(e.issuer)
	abs := func(href string) string {
		u, _ := url.Parse(html.UnescapeString(href))
		return base.ResolveReference(u).String()
	}
	resp, page = b.get(abs(links[0][1]))
	if cb := callbackQuery(t, resp, page); cb.Get("code") == "" || cb.Get("state") != "st-1" {
		t.Fatalf("continue as current: %v", cb)
	}
	resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "select_account")))
	links = chooseLink.FindAllStringSubmatch(page, -1)
	resp, page = b.get(abs(links[1][1]))
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("another account: %d, want the login page", resp.StatusCode)
	}
	// Without a session, select_account is a login.
	resp, page = e.browser().get(e.authURL(with(authParams("conf"), "prompt", "select_account")))
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("select_account without session: %d", resp.StatusCode)
	}
}
