package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/users"
)

// noClientRedirect fails unless resp is a page at the IdP: not a redirect
// of any kind, HTML, and no Location header naming the client.
func noClientRedirect(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode/100 == 3 || resp.Header.Get("Location") != "" {
		t.Fatalf("redirected (%d) to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp.Request.URL.Host == "app.example" {
		t.Fatal("the browser reached the client")
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("not an HTML page: %q", resp.Header.Get("Content-Type"))
	}
}

func TestAuthorizeMoreErrorPages(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name   string
		method string
		mutate func(url.Values)
		status int
	}{
		{"unknown client, registered-looking redirect", http.MethodGet, func(q url.Values) { q.Set("client_id", "Conf") }, 400},
		{"redirect_uri other port", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", "https://app.example:8443/callback") }, 400},
		{"redirect_uri http scheme", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", "http://app.example/callback") }, 400},
		{"redirect_uri with fragment", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", redirectURI+"#x") }, 400},
		{"redirect_uri extra query", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", redirectURI+"?a=1") }, 400},
		{"redirect_uri of another client", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", "https://app.example/cb?x=1") }, 400},
		{"empty redirect_uri", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", "") }, 400},
		{"oversized redirect_uri", http.MethodGet, func(q url.Values) { q.Set("redirect_uri", redirectURI+"?"+strings.Repeat("r", 2100)) }, 400},
		{"client_id repeated", http.MethodGet, func(q url.Values) { q.Add("client_id", "conf") }, 400},
		{"unknown client by POST", http.MethodPost, func(q url.Values) { q.Set("client_id", "nope") }, 400},
		{"PUT", http.MethodPut, func(url.Values) {}, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams("conf")
			tc.mutate(q)
			b := e.browser()
			var resp *http.Response
			if tc.method == http.MethodGet {
				resp, _ = b.get(e.authURL(q))
			} else {
				req, _ := http.NewRequest(tc.method, e.issuer+"/authorize", strings.NewReader(q.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, _ = b.do(req)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			noClientRedirect(t, resp)
		})
	}
	t.Run("oversized query is 414 without redirect", func(t *testing.T) {
		q := authParams("conf")
		q.Set("nonce", strings.Repeat("n", 17<<10))
		resp, _ := e.browser().get(e.authURL(q))
		if resp.StatusCode != http.StatusRequestURITooLong {
			t.Fatalf("status %d", resp.StatusCode)
		}
		noClientRedirect(t, resp)
	})
}

func TestAuthorizeByPOST(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	resp, page := b.post(e.issuer+"/authorize", authParams("conf"))
	if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("POST authorize: %d, want the login page", resp.StatusCode)
	}
	resp, page = b.submitLogin(resp, page, alicePassword)
	cb := callbackQuery(t, resp, page)
	if cb.Get("code") == "" || cb.Get("state") != "st-1" || cb.Get("iss") != e.issuer {
		t.Fatalf("callback %v", cb)
	}
	if r, m := e.token(codeForm(cb.Get("code")), "conf", confSecret); r.StatusCode != 200 {
		t.Fatalf("token: %d %v", r.StatusCode, m)
	}
}

func TestAuthorizeRedirectDetails(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()

	t.Run("state round-trips exactly", func(t *testing.T) {
		st := "a b&c=d/é?#%25+"
		cb := e.login(b, with(authParams("conf"), "state", st))
		if cb.Get("state") != st || cb.Get("code") == "" {
			t.Fatalf("state %q, want %q (%v)", cb.Get("state"), st, cb)
		}
	})
	t.Run("no state, no state parameter", func(t *testing.T) {
		cb := e.login(b, without(authParams("conf"), "state"))
		if _, ok := cb["state"]; ok || cb.Get("code") == "" {
			t.Fatalf("callback %v", cb)
		}
	})
	t.Run("registered query kept on success and error", func(t *testing.T) {
		const cbURI = "https://app.example/cb?x=1"
		q := with(authParams("spa"), "redirect_uri", cbURI)
		resp, page := b.get(e.authURL(q))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		cb := callbackQuery(t, resp, page)
		if loc.Path != "/cb" || cb.Get("x") != "1" || cb.Get("code") == "" {
			t.Fatalf("callback %s", resp.Header.Get("Location"))
		}
		f := with(codeForm(cb.Get("code")), "client_id", "spa", "redirect_uri", cbURI)
		if r, m := e.token(f, "", ""); r.StatusCode != 200 {
			t.Fatalf("token: %d %v", r.StatusCode, m)
		}
		resp, page = b.get(e.authURL(with(q, "scope", "email")))
		cb = callbackQuery(t, resp, page)
		if cb.Get("x") != "1" || cb.Get("error") != "invalid_scope" {
			t.Fatalf("error callback %s", resp.Header.Get("Location"))
		}
	})
	t.Run("oversized state is not echoed", func(t *testing.T) {
		resp, page := e.browser().get(e.authURL(with(authParams("conf"), "state", strings.Repeat("s", 2100))))
		cb := callbackQuery(t, resp, page)
		if cb.Get("error") != "invalid_request" || cb.Has("state") {
			t.Fatalf("callback %v", cb)
		}
	})
	t.Run("prompt none with session past max_age", func(t *testing.T) {
		e.clock.Advance(2 * time.Minute)
		resp, page := b.get(e.authURL(with(authParams("conf"), "prompt", "none", "max_age", "60")))
		if cb := callbackQuery(t, resp, page); cb.Get("error") != "login_required" || cb.Get("state") != "st-1" || cb.Get("iss") != e.issuer {
			t.Fatalf("callback %v", cb)
		}
		resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none", "max_age", "0")))
		if cb := callbackQuery(t, resp, page); cb.Get("error") != "login_required" {
			t.Fatalf("max_age=0: %v", cb)
		}
	})
	t.Run("every code is new", func(t *testing.T) {
		a := e.login(b, authParams("conf")).Get("code")
		c := e.login(b, authParams("conf")).Get("code")
		if a == "" || a == c || len(a) < 32 {
			t.Fatalf("codes %q %q", a, c)
		}
	})
}

func TestLoginPageAndPasswords(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	resp, page := b.get(e.authURL(authParams("conf")))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/idp/login") {
		t.Fatalf("login page at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	m := formAction.FindStringSubmatch(page)
	if m == nil || !strings.HasPrefix(m[1], "/idp/login") {
		t.Fatalf("form action %v, want below the issuer", m)
	}
	if !strings.Contains(page, `href="/idp/static/`) {
		t.Error("the page does not load its assets from below the issuer")
	}
	if r, _ := b.get(e.issuer + "/static/gatehouse.css"); r.StatusCode != 200 {
		t.Errorf("static asset: %d", r.StatusCode)
	}
	// A wrong password: the form again, at the IdP, no redirect.
	resp, page = b.submitLogin(resp, page, "wrong password")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `name="password"`) {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	noClientRedirect(t, resp)
	resp, page = b.submitLogin(resp, page, alicePassword)
	if cb := callbackQuery(t, resp, page); cb.Get("code") == "" {
		t.Fatalf("callback %v", cb)
	}
}

func TestLoginPOSTWithoutAttempt(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	resp, page := b.get(e.authURL(authParams("conf")))
	f := loginForm(page)
	f.Set("username", "alice")
	f.Set("password", alicePassword)
	f.Del("attempt")
	resp, _ = b.post(e.issuer+"/login", f)
	if resp.StatusCode/100 != 4 {
		t.Fatalf("login POST without attempt: %d", resp.StatusCode)
	}
	noClientRedirect(t, resp)
}

// idTokenParts verifies raw against the JWKS and the standard rules and
// returns its header and claims.
func (e *env) idTokenParts(raw string, alg jose.SignatureAlgorithm, aud string) (jose.Header, map[string]any) {
	e.t.Helper()
	resp, err := http.Get(e.issuer + "/jwks")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{alg})
	if err != nil {
		e.t.Fatalf("ID token is not a %s JWS: %v", alg, err)
	}
	h := tok.Headers[0]
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	var std jwt.Claims
	all := map[string]any{}
	if err := tok.Claims(keys[0].Key, &std, &all); err != nil {
		e.t.Fatalf("signature: %v", err)
	}
	if err := std.Validate(jwt.Expected{Issuer: e.issuer, AnyAudience: jwt.Audience{aud}, Time: e.clock.Now()}); err != nil {
		e.t.Fatalf("claims: %v", err)
	}
	return h, all
}

func TestIDTokenDetails(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		t.Run(string(alg), func(t *testing.T) {
			e := newEnv(t, string(alg), func(c *provider.Config) { c.IDTokenTTL = 5 * time.Minute })
			b := e.browser()
			cb := e.login(b, without(authParams("spa"), "nonce"))
			resp, tok := e.token(with(codeForm(cb.Get("code")), "client_id", "spa"), "", "")
			if resp.StatusCode != 200 {
				t.Fatalf("token: %d %v", resp.StatusCode, tok)
			}
			h, c := e.idTokenParts(tok["id_token"].(string), alg, "spa")
			if h.Algorithm != string(alg) {
				t.Errorf("alg %s", h.Algorithm)
			}
			if _, ok := c["nonce"]; ok {
				t.Error("nonce claim without a nonce in the request")
			}
			if c["aud"] != "spa" || c["azp"] != "spa" || c["sub"] != e.alice.Subject {
				t.Errorf("aud/azp/sub %v %v %v", c["aud"], c["azp"], c["sub"])
			}
			now := float64(e.clock.Now().Unix())
			if c["exp"] != now+300 || c["iat"] != now {
				t.Errorf("iat %v exp %v, want %v and +300 (IDTokenTTL)", c["iat"], c["exp"], now)
			}
			sum := sha256.Sum256([]byte(tok["access_token"].(string)))
			if c["at_hash"] != base64.RawURLEncoding.EncodeToString(sum[:16]) {
				t.Errorf("at_hash %v", c["at_hash"])
			}
			sid, _ := c["sid"].(string)
			if len(sid) < 16 {
				t.Fatalf("sid %v", c["sid"])
			}

			// Same browser, another client: single sign-on, same sid
			// and auth_time.
			e.clock.Advance(time.Minute)
			cb = e.login(b, authParams("conf"))
			_, tok2 := e.token(codeForm(cb.Get("code")), "conf", confSecret)
			_, c2 := e.idTokenParts(tok2["id_token"].(string), alg, "conf")
			if c2["sid"] != sid || c2["auth_time"] != c["auth_time"] || c2["iat"] != now+60 {
				t.Errorf("SSO token: sid %v auth_time %v iat %v; first sid %v auth_time %v", c2["sid"], c2["auth_time"], c2["iat"], sid, c["auth_time"])
			}
			// Another browser: another session.
			cb = e.login(e.browser(), authParams("conf"))
			_, tok3 := e.token(codeForm(cb.Get("code")), "conf", confSecret)
			if _, c3 := e.idTokenParts(tok3["id_token"].(string), alg, "conf"); c3["sid"] == sid {
				t.Error("two browsers share a sid")
			}
			// An ID token for spa is not one for conf.
			tk, _ := jwt.ParseSigned(tok["id_token"].(string), []jose.SignatureAlgorithm{alg})
			var std jwt.Claims
			tk.UnsafeClaimsWithoutVerification(&std)
			if std.Validate(jwt.Expected{AnyAudience: jwt.Audience{"conf"}}) == nil {
				t.Error("spa's ID token validates for conf")
			}
			// Expired after IDTokenTTL.
			if std.Validate(jwt.Expected{Time: e.clock.Now().Add(6 * time.Minute)}) == nil {
				t.Error("ID token valid past IDTokenTTL")
			}

			// Discovery advertises exactly this algorithm, and the JWKS
			// key says what it is for.
			d := e.discovery()
			if got := strList(d["id_token_signing_alg_values_supported"]); !slices.Equal(got, []string{string(alg)}) {
				t.Errorf("id_token_signing_alg_values_supported %v", got)
			}
			set := e.jwks()
			if len(set.Keys) != 1 || set.Keys[0].Use != "sig" || set.Keys[0].Algorithm != string(alg) || !set.Keys[0].IsPublic() || set.Keys[0].KeyID != h.KeyID {
				t.Errorf("JWKS %+v", set.Keys)
			}
		})
	}
}

func TestOpenIDScopeOnly(t *testing.T) {
	e := newEnv(t, "")
	cb := e.login(e.browser(), with(authParams("conf"), "scope", "openid"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	if tok["scope"] != "openid" {
		t.Fatalf("scope %v", tok["scope"])
	}
	_, c := e.idTokenParts(tok["id_token"].(string), jose.RS256, "conf")
	for _, k := range []string{"email", "email_verified", "name", "preferred_username", "given_name", "family_name", "updated_at", "groups"} {
		if _, ok := c[k]; ok {
			t.Errorf("ID token has %s with scope openid only", k)
		}
	}
	if amr := strList(c["amr"]); !slices.Equal(amr, []string{"pwd"}) || c["acr"] != "1" || c["nonce"] != "n-1" {
		t.Errorf("amr %v acr %v nonce %v", c["amr"], c["acr"], c["nonce"])
	}
	_, ui := e.userinfo(tok["access_token"].(string))
	for _, k := range []string{"email", "name", "preferred_username", "groups"} {
		if _, ok := ui[k]; ok {
			t.Errorf("userinfo has %s with scope openid only", k)
		}
	}
	if ui["sub"] != e.alice.Subject {
		t.Errorf("userinfo %v", ui)
	}
}

func TestOldKeyRetiresAfterOverlap(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	cb := e.login(b, authParams("conf"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	oldTok := tok["id_token"].(string)
	oldKid := kidOf(t, oldTok)
	newKid, err := e.keys.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// During the overlap the old token still verifies with the JWKS.
	e.idTokenParts(oldTok, jose.RS256, "conf")
	// The overlap (20 minutes here) passes; the JWKS reloads.
	e.clock.Advance(21 * time.Minute)
	set := e.jwks()
	if len(set.Key(oldKid)) != 0 || len(set.Key(newKid)) != 1 || len(set.Keys) != 1 {
		t.Fatalf("JWKS after the overlap: %+v", set.Keys)
	}
	cb = e.login(b, authParams("conf"))
	_, tok = e.token(codeForm(cb.Get("code")), "conf", confSecret)
	if h, _ := e.idTokenParts(tok["id_token"].(string), jose.RS256, "conf"); h.KeyID != newKid {
		t.Fatalf("kid %q, want %q", h.KeyID, newKid)
	}
}

func TestTokenEndpointDetails(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	newCode := func(client string) string { return e.login(b, authParams(client)).Get("code") }

	t.Run("content type with charset", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(codeForm(newCode("conf")).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		req.SetBasicAuth("conf", url.QueryEscape(confSecret))
		resp, m := doJSON(t, req)
		if resp.StatusCode != 200 || resp.Header.Get("Pragma") != "no-cache" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%d %v %v", resp.StatusCode, resp.Header, m)
		}
	})
	t.Run("raw secret in basic (not form-encoded) fails", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(codeForm(newCode("conf")).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("conf", confSecret) // '+' decodes to a space
		if resp, m := doJSON(t, req); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("malformed percent-encoding in basic", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(codeForm(newCode("conf")).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("conf", "%zz")
		if resp, m := doJSON(t, req); resp.StatusCode/100 != 4 || m["error"] == nil {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("bearer scheme at the token endpoint", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(codeForm(newCode("conf")).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer x")
		if resp, m := doJSON(t, req); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})

	spaCode := newCode("spa")
	spa := func(f url.Values) url.Values { return with(f, "client_id", "spa") }
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		err        string
	}{
		{"public: missing verifier", without(spa(codeForm(spaCode)), "code_verifier"), "", "", 400, "invalid_grant"},
		{"public: wrong verifier", spa(with(codeForm(spaCode), "code_verifier", strings.Repeat("v", 64))), "", "", 400, "invalid_grant"},
		{"public: no client_id", codeForm(spaCode), "", "", 401, "invalid_client"},
		{"public: basic with empty secret", codeForm(spaCode), "spa", "", 401, "invalid_client"},
		{"public code redeemed by confidential client", codeForm(spaCode), "conf", confSecret, 400, "invalid_grant"},
		{"unknown client by post", with(codeForm(spaCode), "client_id", "nobody", "client_secret", "x"), "", "", 401, "invalid_client"},
		{"empty grant_type", spa(with(codeForm(spaCode), "grant_type", "")), "", "", 400, "invalid_request"},
		{"refresh_token grant without a token", spa(with(codeForm(spaCode), "grant_type", "refresh_token")), "", "", 400, "invalid_request"},
		{"client_credentials not allowed", with(codeForm(spaCode), "grant_type", "client_credentials"), "conf", confSecret, 400, "unauthorized_client"},
		{"unknown grant type", with(codeForm(spaCode), "grant_type", "password"), "conf", confSecret, 400, "unsupported_grant_type"},
		{"implicit is no grant type", with(codeForm(spaCode), "grant_type", "implicit"), "conf", confSecret, 400, "unsupported_grant_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := e.token(tc.form, tc.user, tc.pass)
			if resp.StatusCode != tc.status || m["error"] != tc.err {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.err)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("error headers %v", resp.Header)
			}
			if tc.status == 401 && tc.user != "" && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// The failures did not spend the public client's code.
	if resp, m := e.token(spa(codeForm(spaCode)), "", ""); resp.StatusCode != 200 {
		t.Fatalf("spa code after failures: %d %v", resp.StatusCode, m)
	}

	t.Run("disabled user", func(t *testing.T) {
		code := newCode("conf")
		e.users.Update(context.Background(), e.alice.Subject, func(u *users.User) error { u.Disabled = true; return nil })
		defer e.users.Update(context.Background(), e.alice.Subject, func(u *users.User) error { u.Disabled = false; return nil })
		if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("code at exactly CodeTTL still works, a second later not", func(t *testing.T) {
		code := newCode("conf")
		e.clock.Advance(60 * time.Second)
		if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 200 {
			t.Fatalf("at 60s: %d %v", resp.StatusCode, m)
		}
		code = newCode("conf")
		e.clock.Advance(61 * time.Second)
		if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
			t.Fatalf("at 61s: %d %v", resp.StatusCode, m)
		}
	})
}

func TestUserinfoDetails(t *testing.T) {
	e := newEnv(t, "")
	cb := e.login(e.browser(), authParams("spa"))
	_, tok := e.token(with(codeForm(cb.Get("code")), "client_id", "spa"), "", "")
	at := tok["access_token"].(string)

	t.Run("public client's token", func(t *testing.T) {
		resp, m := e.userinfo(at)
		if resp.StatusCode != 200 || m["sub"] != e.alice.Subject || m["email"] != "alice@example.com" || m["preferred_username"] != "alice" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if _, ok := m["groups"]; ok {
			t.Error("groups without the groups scope")
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	})
	t.Run("lower-case bearer scheme", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "bearer "+at)
		if resp, m := doJSON(t, req); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("header and body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/userinfo", strings.NewReader(url.Values{"access_token": {at}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+at)
		if resp, m := doJSON(t, req); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("token in the URL is not accepted", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo?access_token="+url.QueryEscape(at), nil)
		resp, m := doJSON(t, req)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("POST form without a token", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/userinfo", strings.NewReader("x=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, _ := doJSON(t, req); resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("oversized token", func(t *testing.T) {
		if resp, m := e.userinfo(strings.Repeat("t", 600)); resp.StatusCode != 401 || m["error"] != "invalid_token" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("ID token is not an access token", func(t *testing.T) {
		if resp, m := e.userinfo(tok["id_token"].(string)); resp.StatusCode != 401 || m["error"] != "invalid_token" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("expired token says so in WWW-Authenticate", func(t *testing.T) {
		e.clock.Advance(15*time.Minute + time.Second)
		resp, m := e.userinfo(at)
		if resp.StatusCode != 401 || m["error"] != "invalid_token" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%d %v %q", resp.StatusCode, m, resp.Header.Get("WWW-Authenticate"))
		}
	})
}

// A session cookie signed with another key, or a garbage one, is no
// session: the login page, never a server error.
func TestForeignAndGarbageSessionCookies(t *testing.T) {
	e := newEnv(t, "")
	other := newEnv(t, "")
	ob := other.browser()
	other.login(ob, authParams("conf"))
	ou, _ := url.Parse(other.issuer)
	u, _ := url.Parse(e.issuer)
	for name, cookies := range map[string][]*http.Cookie{
		"other provider's cookies": ob.c.Jar.Cookies(ou),
		"garbage":                  {{Name: "gatehouse", Value: "%%%not-base64"}, {Name: "gatehouse-b", Value: strings.Repeat("A", 4000)}},
	} {
		t.Run(name, func(t *testing.T) {
			b := e.browser()
			b.c.Jar.SetCookies(u, cookies)
			resp, page := b.get(e.authURL(authParams("conf")))
			if resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
				t.Fatalf("%d, want the login page", resp.StatusCode)
			}
			resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none")))
			if cb := callbackQuery(t, resp, page); cb.Get("error") != "login_required" {
				t.Fatalf("prompt=none: %v", cb)
			}
		})
	}
}
