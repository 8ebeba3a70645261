package provider_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/provider"
)

// requestClaims are the claims of a request object carrying q.
func (e *env) requestClaims(client string, q url.Values) map[string]any {
	now := e.clock.Now()
	m := map[string]any{"iss": client, "aud": e.issuer, "jti": randomID(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	for k := range q {
		m[k] = q.Get(k)
	}
	return m
}

// push posts a pushed authorization request and returns the answer.
func (e *env) push(form url.Values, user, pass string) (*http.Response, map[string]any) {
	e.t.Helper()
	return e.postForm("/par", form, user, pass)
}

// pushed pushes form for conf and returns its request_uri.
func (e *env) pushed(t *testing.T, form url.Values) string {
	t.Helper()
	resp, body := e.push(form, "conf", confSecret)
	uri, _ := body["request_uri"].(string)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || body["expires_in"] != float64(90) {
		t.Fatalf("push: %d %v", resp.StatusCode, body)
	}
	return uri
}

func byReference(client, uri string) url.Values {
	return url.Values{"client_id": {client}, "request_uri": {uri}}
}

// errorPageShown: the browser got an error page at the IdP that names
// code, not a redirect.
func errorPageShown(t *testing.T, resp *http.Response, page, code string) {
	t.Helper()
	noClientRedirect(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, code) {
		t.Fatalf("status %d, want 400 naming %q:\n%s", resp.StatusCode, code, page)
	}
}

func TestPushedAuthorizationRequests(t *testing.T) {
	var log *audit.Log
	e := newEnv(t, "", withAudit(&log))
	jc := addJWTClients(t, e)

	t.Run("confidential client, code flow", func(t *testing.T) {
		q := authParams("conf")
		q.Set("scope", "openid profile")
		uri := e.pushed(t, q)
		// Parameters beside request_uri in the query are not used.
		outer := byReference("conf", uri)
		outer.Set("scope", "openid profile email")
		outer.Set("state", "other")
		cb := e.login(e.browser(), outer)
		if cb.Get("state") != "st-1" || cb.Get("code") == "" {
			t.Fatalf("callback %v", cb)
		}
		resp, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
		if resp.StatusCode != 200 || tok["scope"] != "openid profile" {
			t.Fatalf("token: %d %v", resp.StatusCode, tok)
		}
	})
	t.Run("private_key_jwt, PAR endpoint as aud", func(t *testing.T) {
		a := with2(e.assertion("pkj"), "aud", e.issuer+"/par")
		resp, body := e.push(assertionForm(authParams("pkj"), jc.rsa.sign(t, a)), "", "")
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push: %d %v", resp.StatusCode, body)
		}
		cb := e.login(e.browser(), byReference("pkj", body["request_uri"].(string)))
		resp, tok := e.token(assertionForm(codeForm(cb.Get("code")), jc.ec.sign(t, e.assertion("pkj"))), "", "")
		if resp.StatusCode != 200 || tok["id_token"] == nil {
			t.Fatalf("token: %d %v", resp.StatusCode, tok)
		}
	})
	t.Run("public client", func(t *testing.T) {
		resp, body := e.push(authParams("spa"), "", "")
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push: %d %v", resp.StatusCode, body)
		}
		if cb := e.login(e.browser(), byReference("spa", body["request_uri"].(string))); cb.Get("code") == "" {
			t.Fatalf("callback %v", cb)
		}
	})
	t.Run("request object inside PAR", func(t *testing.T) {
		raw := jc.ec.sign(t, e.requestClaims("pkj", authParams("pkj")))
		form := url.Values{"client_id": {"pkj"}, "request": {raw}}
		resp, body := e.push(assertionForm(form, jc.ec.sign(t, e.assertion("pkj"))), "", "")
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push: %d %v", resp.StatusCode, body)
		}
		if cb := e.login(e.browser(), byReference("pkj", body["request_uri"].(string))); cb.Get("code") == "" || cb.Get("state") != "st-1" {
			t.Fatalf("callback %v", cb)
		}
	})

	bad := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		err        string
	}{
		{"no client authentication", authParams("conf"), "", "", 401, "invalid_client"},
		{"wrong secret", authParams("conf"), "conf", "nope", 401, "invalid_client"},
		{"unregistered redirect_uri", with(authParams("conf"), "redirect_uri", "https://evil.example/cb"), "conf", confSecret, 400, "invalid_request"},
		{"no redirect_uri", func() url.Values { q := authParams("conf"); q.Del("redirect_uri"); return q }(), "conf", confSecret, 400, "invalid_request"},
		{"another client's client_id", with(authParams("conf"), "client_id", "post"), "conf", confSecret, 400, "invalid_request"},
		{"request_uri pushed", with(authParams("conf"), "request_uri", "urn:ietf:params:oauth:request_uri:x"), "conf", confSecret, 400, "invalid_request"},
		{"no openid scope", with(authParams("conf"), "scope", "profile"), "conf", confSecret, 400, "invalid_scope"},
		{"unsupported response_type", with(authParams("conf"), "response_type", "token"), "conf", confSecret, 400, "unsupported_response_type"},
		{"PKCE plain", with(authParams("conf"), "code_challenge_method", "plain"), "conf", confSecret, 400, "invalid_request"},
		{"public client without PKCE", func() url.Values { q := authParams("spa"); q.Del("code_challenge"); return q }(), "", "", 400, "invalid_request"},
		{"bad request object", with(url.Values{"client_id": {"conf"}}, "request", unsigned(e.requestClaims("conf", authParams("conf")))), "conf", confSecret, 400, "invalid_request_object"},
		{"oversized", with(authParams("conf"), "claims", strings.Repeat("x", 20<<10)), "conf", confSecret, 400, "invalid_request"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.push(tc.form, tc.user, tc.pass)
			if resp.StatusCode != tc.status || body["error"] != tc.err || resp.Header.Get("Location") != "" || body["request_uri"] != nil {
				t.Fatalf("status %d %v, want %d %s", resp.StatusCode, body, tc.status, tc.err)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(e.issuer + "/par?" + authParams("spa").Encode())
		if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %v %v", resp.StatusCode, err)
		}
	})

	t.Run("request_uri is single use", func(t *testing.T) {
		uri := e.pushed(t, authParams("conf"))
		e.login(e.browser(), byReference("conf", uri))
		resp, page := e.browser().get(e.authURL(byReference("conf", uri)))
		errorPageShown(t, resp, page, "unknown, expired or already used")
	})
	t.Run("request_uri of another client", func(t *testing.T) {
		before := log.Counts()[audit.TokenMisuse]
		uri := e.pushed(t, authParams("conf"))
		resp, page := e.browser().get(e.authURL(byReference("post", uri)))
		errorPageShown(t, resp, page, "another client")
		if log.Counts()[audit.TokenMisuse] != before+1 {
			t.Fatal("not audited")
		}
		// It is spent: its own client cannot use it either.
		resp, page = e.browser().get(e.authURL(byReference("conf", uri)))
		errorPageShown(t, resp, page, "already used")
	})
	t.Run("expired request_uri", func(t *testing.T) {
		uri := e.pushed(t, authParams("conf"))
		e.clock.Advance(91 * time.Second)
		resp, page := e.browser().get(e.authURL(byReference("conf", uri)))
		errorPageShown(t, resp, page, "invalid_request_uri")
	})
	t.Run("made-up request_uri", func(t *testing.T) {
		for _, uri := range []string{"urn:ietf:params:oauth:request_uri:" + randomID(), "urn:ietf:params:oauth:request_uri:", "urn:ietf:params:oauth:request_uri:" + strings.Repeat("a", 100)} {
			resp, page := e.browser().get(e.authURL(byReference("conf", uri)))
			errorPageShown(t, resp, page, "request_uri")
		}
	})
	t.Run("error redirected when the query names a registered redirect_uri", func(t *testing.T) {
		q := byReference("conf", "urn:ietf:params:oauth:request_uri:"+randomID())
		q.Set("redirect_uri", redirectURI)
		q.Set("state", "s-9")
		resp, page := e.browser().get(e.authURL(q))
		if cb := callbackQuery(t, resp, page); cb.Get("error") != "invalid_request_uri" || cb.Get("state") != "s-9" {
			t.Fatalf("callback %v", cb)
		}
	})
}

func TestRequirePushedAuthorizationRequests(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		e := newEnv(t, "")
		if err := e.clients.SetStatic(provider.Client{ID: "parreq", Secret: "parreq-secret", RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{FirstParty: true, RequirePushedAuthorizationRequests: true}}); err != nil {
			t.Fatal(err)
		}
		resp, page := e.browser().get(e.authURL(authParams("parreq")))
		if cb := callbackQuery(t, resp, page); cb.Get("error") != "invalid_request" || !strings.Contains(cb.Get("error_description"), "push") {
			t.Fatalf("callback %v", cb)
		}
		// Without a registered redirect_uri in the query: a page.
		q := authParams("parreq")
		q.Del("redirect_uri")
		resp, page = e.browser().get(e.authURL(q))
		errorPageShown(t, resp, page, "push")
		// Other clients are not affected; the client itself can push.
		if cb := e.login(e.browser(), authParams("conf")); cb.Get("code") == "" {
			t.Fatalf("conf: %v", cb)
		}
		resp, body := e.push(authParams("parreq"), "parreq", "parreq-secret")
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push: %d %v", resp.StatusCode, body)
		}
		if cb := e.login(e.browser(), byReference("parreq", body["request_uri"].(string))); cb.Get("code") == "" {
			t.Fatalf("callback %v", cb)
		}
	})
	t.Run("global", func(t *testing.T) {
		e := newEnv(t, "", func(c *provider.Config) { c.RequirePAR = true })
		if d := e.discovery(); d["require_pushed_authorization_requests"] != true || d["pushed_authorization_request_endpoint"] != e.issuer+"/par" {
			t.Fatalf("discovery %v", d)
		}
		resp, page := e.browser().get(e.authURL(authParams("conf")))
		if cb := callbackQuery(t, resp, page); cb.Get("error") != "invalid_request" {
			t.Fatalf("callback %v", cb)
		}
		// A request object by value is not a pushed request either.
		q := url.Values{"client_id": {"conf"}, "request": {"x.y.z"}}
		resp, page = e.browser().get(e.authURL(q))
		errorPageShown(t, resp, page, "push")
		if cb := e.login(e.browser(), byReference("conf", e.pushed(t, authParams("conf")))); cb.Get("code") == "" {
			t.Fatalf("pushed: %v", cb)
		}
	})
}

func TestRequestObjects(t *testing.T) {
	var log *audit.Log
	e := newEnv(t, "", withAudit(&log))
	jc := addJWTClients(t, e)
	// A client publishing request objects at registered request_uris.
	var served atomic.Value
	served.Store("")
	ros := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/oauth-authz-req+jwt")
		w.Write([]byte(served.Load().(string)))
	}))
	t.Cleanup(ros.Close)
	if err := e.clients.SetStatic(provider.Client{ID: "ro", Secret: csjSecret, RedirectURIs: []string{redirectURI},
		ClientSettings: provider.ClientSettings{FirstParty: true, JWKS: jwksOf(t, jc.rsa, jc.ec), RequestObjectSigningAlg: "ES256",
			RequestURIs: []string{ros.URL + "/req#v1", ros.URL + "/missing"}}}); err != nil {
		t.Fatal(err)
	}
	byValue := func(client, raw string) url.Values { return url.Values{"client_id": {client}, "request": {raw}} }

	t.Run("by value, RS256", func(t *testing.T) {
		q := authParams("pkj")
		q.Set("max_age", "3600")
		q.Set("claims", `{"id_token":{"acr":{"essential":false,"values":["1"]}}}`)
		claims := e.requestClaims("pkj", q)
		claims["max_age"] = 3600
		claims["claims"] = map[string]any{"id_token": map[string]any{"acr": map[string]any{"essential": false, "values": []string{"1"}}}}
		cb := e.login(e.browser(), byValue("pkj", jc.rsa.sign(t, claims)))
		if cb.Get("code") == "" || cb.Get("state") != "st-1" {
			t.Fatalf("callback %v", cb)
		}
	})
	t.Run("by value, HS256 with the client secret", func(t *testing.T) {
		raw := signJWT(t, jose.HS256, []byte(csjSecret), "", e.requestClaims("csj", authParams("csj")), nil)
		if cb := e.login(e.browser(), byValue("csj", raw)); cb.Get("code") == "" {
			t.Fatalf("callback %v", cb)
		}
	})
	t.Run("the object's parameters win over the query's", func(t *testing.T) {
		obj := authParams("pkj")
		obj.Set("scope", "openid profile")
		obj.Set("state", "from-object")
		outer := authParams("pkj")
		outer.Set("scope", "openid email")
		outer.Set("state", "from-query")
		outer.Set("request", jc.ec.sign(t, e.requestClaims("pkj", obj)))
		cb := e.login(e.browser(), outer)
		if cb.Get("state") != "from-object" {
			t.Fatalf("callback %v", cb)
		}
		_, tok := e.token(assertionForm(codeForm(cb.Get("code")), jc.ec.sign(t, e.assertion("pkj"))), "", "")
		if tok["scope"] != "openid profile" {
			t.Fatalf("scope %v", tok["scope"])
		}
	})
	t.Run("by reference from a registered request_uri", func(t *testing.T) {
		served.Store(jc.ec.sign(t, e.requestClaims("ro", authParams("ro"))) + "\n")
		if cb := e.login(e.browser(), byReference("ro", ros.URL+"/req#v2")); cb.Get("code") == "" {
			t.Fatalf("callback %v", cb)
		}
	})

	good := authParams("pkj")
	cases := []struct {
		name     string
		q        url.Values
		code     string
		redirect bool // the query names a registered redirect_uri
	}{
		{"request and request_uri", url.Values{"client_id": {"pkj"}, "request": {jc.ec.sign(t, e.requestClaims("pkj", good))}, "request_uri": {ros.URL + "/req"}}, "invalid_request", false},
		{"request and request_uri, redirect_uri in the query", with(url.Values{"client_id": {"pkj"}, "redirect_uri": {redirectURI}, "state": {"st-1"},
			"request": {jc.ec.sign(t, e.requestClaims("pkj", good))}}, "request_uri", ros.URL+"/req"), "invalid_request", true},
		{"wrong client_id in the object", byValue("pkj", jc.ec.sign(t, e.requestClaims("pkj", with(authParams("pkj"), "client_id", "conf")))), "invalid_request_object", false},
		{"object of another client", byValue("csj", jc.ec.sign(t, e.requestClaims("pkj", authParams("pkj")))), "invalid_request_object", false},
		{"wrong signature", byValue("pkj", jc.other.sign(t, e.requestClaims("pkj", good))), "invalid_request_object", false},
		{"alg none", byValue("pkj", unsigned(e.requestClaims("pkj", good))), "invalid_request_object", false},
		{"HS256 keyed with the public key", byValue("pkj", signJWT(t, jose.HS256, publicPEM(t, jc.rsa), "r1", e.requestClaims("pkj", good), nil)), "invalid_request_object", false},
		{"wrong iss", byValue("pkj", jc.ec.sign(t, with2(e.requestClaims("pkj", good), "iss", "conf"))), "invalid_request_object", false},
		{"wrong aud", byValue("pkj", jc.ec.sign(t, with2(e.requestClaims("pkj", good), "aud", "https://other.example"))), "invalid_request_object", false},
		{"expired", byValue("pkj", jc.ec.sign(t, with2(e.requestClaims("pkj", good), "exp", e.clock.Now().Add(-time.Hour).Unix()))), "invalid_request_object", false},
		{"nested request_uri", byValue("pkj", jc.ec.sign(t, with2(e.requestClaims("pkj", good), "request_uri", "https://x"))), "invalid_request_object", false},
		{"claim that is no parameter", byValue("pkj", jc.ec.sign(t, with2(e.requestClaims("pkj", good), "nonce", []any{1, 2}))), "invalid_request_object", false},
		{"registered alg ES256, RS256 sent", byValue("ro", jc.rsa.sign(t, e.requestClaims("ro", authParams("ro")))), "invalid_request_object", false},
		{"garbage", byValue("pkj", "garbage"), "invalid_request_object", false},
		{"oversized", byValue("pkj", strings.Repeat("a", 15<<10)), "invalid_request_object", false},
		{"response_type differs", with(byValue("pkj", jc.ec.sign(t, e.requestClaims("pkj", good))), "response_type", "id_token"), "invalid_request", false},
		{"bad signature, redirect_uri in the query", with(byValue("pkj", jc.other.sign(t, e.requestClaims("pkj", good))), "redirect_uri", redirectURI), "invalid_request_object", true},
		{"unregistered request_uri", byReference("ro", ros.URL+"/other"), "invalid_request_uri", false},
		{"request_uri of another client", byReference("pkj", ros.URL+"/req"), "invalid_request_uri", false},
		{"request_uri not found", byReference("ro", ros.URL+"/missing"), "invalid_request_uri", false},
		{"no client_id", url.Values{"request": {jc.ec.sign(t, e.requestClaims("pkj", good))}}, "client_id", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, page := e.browser().get(e.authURL(tc.q))
			if tc.redirect {
				if cb := callbackQuery(t, resp, page); cb.Get("error") != tc.code || cb.Get("code") != "" {
					t.Fatalf("callback %v, want %s", cb, tc.code)
				}
				return
			}
			errorPageShown(t, resp, page, tc.code)
		})
	}
	if log.Counts()[audit.TokenMisuse] < 10 {
		t.Fatalf("refused request objects not audited: %v", log.Counts())
	}
}

// TestDiscoveryOfClientJWTs: discovery lists the JWT client methods and
// algorithms, PAR and request objects, and every algorithm listed works.
func TestDiscoveryOfClientJWTs(t *testing.T) {
	e := newEnv(t, "")
	d := e.discovery()
	for k, want := range map[string]any{"request_parameter_supported": true, "request_uri_parameter_supported": true,
		"require_request_uri_registration": true, "require_pushed_authorization_requests": false,
		"pushed_authorization_request_endpoint": e.issuer + "/par"} {
		if d[k] != want {
			t.Errorf("%s = %v, want %v", k, d[k], want)
		}
	}
	for _, k := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"} {
		if m := strList(d[k]); !slices.Contains(m, "private_key_jwt") || !slices.Contains(m, "client_secret_jwt") {
			t.Errorf("%s = %v", k, m)
		}
	}
	algs := strList(d["token_endpoint_auth_signing_alg_values_supported"])
	if !slices.Equal(algs, strList(d["request_object_signing_alg_values_supported"])) || slices.Contains(algs, "none") || len(algs) < 10 {
		t.Fatalf("algorithms %v", algs)
	}
	// A key per algorithm family; each listed algorithm authenticates.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	private := map[string]any{"RS": rsaKey, "PS": rsaKey, "ES256": ec256, "ES384": ec384, "ES512": ec521, "EdDSA": ed}
	var set jose.JSONWebKeySet
	for kid, k := range map[string]any{"rsa": rsaKey, "ec256": ec256, "ec384": ec384, "ec521": ec521, "ed": ed} {
		set.Keys = append(set.Keys, (&jose.JSONWebKey{Key: k, KeyID: kid}).Public())
	}
	jwks, _ := json.Marshal(set)
	secret := strings.Repeat(csjSecret, 2)
	for _, c := range []provider.Client{
		{ID: "every-key", TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, ClientSettings: provider.ClientSettings{
			GrantTypes: []string{provider.GrantClientCredentials}, JWKS: jwks}},
		{ID: "every-hmac", Secret: secret, TokenEndpointAuthMethod: provider.AuthSecretJWT, ClientSettings: provider.ClientSettings{
			GrantTypes: []string{provider.GrantClientCredentials}}},
	} {
		if err := e.clients.SetStatic(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, alg := range algs {
		client, key := "every-key", private[alg]
		if key == nil {
			key = private[alg[:2]]
		}
		if strings.HasPrefix(alg, "HS") {
			client, key = "every-hmac", []byte(secret)
		}
		raw := signJWT(t, jose.SignatureAlgorithm(alg), key, "", e.assertion(client), nil)
		if resp, body := e.token(assertionForm(cc(), raw), "", ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d %v", alg, resp.StatusCode, body)
		}
	}
}
