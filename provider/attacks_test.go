package provider_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Attacks from outside on what issue 11 added: each test is one way in
// that was open, and stays closed.

// httpsRegEnv is a registration env whose issuer is https (as in
// production), served at srv.
func httpsRegEnv(t *testing.T, policy string, opts ...func(*provider.Config)) (*env, *httptest.Server) {
	t.Helper()
	e, _ := regEnv(t, policy, append([]func(*provider.Config){func(c *provider.Config) { c.Issuer = "https://idp.example" }}, opts...)...)
	srv := httptest.NewServer(e.p)
	t.Cleanup(srv.Close)
	return e, srv
}

// TestRegisteredClientCannotAimTheProviderAtItsOwnMachine: a stranger
// who registers a client (open registration) must not make the provider
// itself GET or POST to addresses on its own machine or link-local
// network: a back-channel logout URI of http://127.0.0.1:2019/stop is a
// POST to Caddy's admin API (which stops the server); a jwks_uri or a
// request_uri there is a GET of whatever listens. Loopback is for a
// provider that itself runs on http (tests, local development).
func TestRegisteredClientCannotAimTheProviderAtItsOwnMachine(t *testing.T) {
	e, srv := httpsRegEnv(t, provider.RegistrationOpen)
	keyed := func(kv ...any) map[string]any {
		return meta(append([]any{"token_endpoint_auth_method", "private_key_jwt"}, kv...)...)
	}
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"backchannel to the admin API", meta("backchannel_logout_uri", "http://127.0.0.1:2019/stop")},
		{"backchannel to localhost", meta("backchannel_logout_uri", "http://localhost:2019/stop")},
		{"backchannel to a .localhost name", meta("backchannel_logout_uri", "http://admin.localhost:2019/stop")},
		{"backchannel to loopback over https", meta("backchannel_logout_uri", "https://127.0.0.1/bcl")},
		{"backchannel to link-local", meta("backchannel_logout_uri", "https://169.254.169.254/latest")},
		{"backchannel to the unspecified address", meta("backchannel_logout_uri", "https://0.0.0.0:2019/stop")},
		{"backchannel to a zoned loopback", meta("backchannel_logout_uri", "https://[::1%25lo]/bcl")},
		{"backchannel to a zoned unspecified address", meta("backchannel_logout_uri", "https://[::%250]/bcl")},
		{"jwks_uri on loopback", keyed("jwks_uri", "http://127.0.0.1:2019/config/")},
		{"jwks_uri on IPv6 loopback", keyed("jwks_uri", "http://[::1]:2019/config/")},
		{"request_uri on loopback", meta("request_uris", uris("http://127.0.0.1:6060/debug/pprof/"))},
		{"request_uri on IPv6 link-local", meta("request_uris", uris("https://[fe80::1]/req"))},
		{"sector on loopback over https", meta("subject_type", "pairwise", "sector_identifier_uri", "https://localhost:2019/config/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := e.jsonRequest(http.MethodPost, srv.URL+"/register", "", tc.body)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_client_metadata" {
				t.Fatalf("%d %v, want 400 invalid_client_metadata", resp.StatusCode, m)
			}
		})
	}
	// The provider contacts public https addresses as before.
	for _, body := range []map[string]any{
		meta("backchannel_logout_uri", "https://app.example/bcl"),
		keyed("jwks_uri", "https://app.example/jwks"),
		meta("request_uris", uris("https://app.example/req#h")),
	} {
		if resp, m := e.jsonRequest(http.MethodPost, srv.URL+"/register", "", body); resp.StatusCode != http.StatusCreated {
			t.Fatalf("%v: %d %v", body, resp.StatusCode, m)
		}
	}
}

// TestRegisteredClientGrantsItselfNoScope: at the authorization
// endpoint a person consents to what a registered client gets; with
// client_credentials nobody does. A stranger who registers a client
// (open registration) must not mint tokens carrying an admin's API
// scopes, or any scope it wrote into its own metadata, for resource
// servers to honour.
func TestRegisteredClientGrantsItselfNoScope(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen, func(c *provider.Config) {
		c.Scopes = []provider.Scope{{Name: "reports:write", Description: "Change reports"}}
	})
	cc := func(r registered, scope string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			form.Set("scope", scope)
		}
		resp, out := e.token(form, r.ID, r.Secret)
		return resp.StatusCode, out
	}
	svc := e.register(map[string]any{"grant_types": []string{"client_credentials"}}, "")
	if status, out := cc(svc, "reports:write"); status != 400 || out["error"] != "invalid_scope" {
		t.Errorf("a registered client took an admin's scope: %d %v", status, out)
	}
	chosen := e.register(map[string]any{"grant_types": []string{"client_credentials"}, "scope": "admin:all"}, "")
	if status, out := cc(chosen, "admin:all"); status != 400 || out["error"] != "invalid_scope" {
		t.Errorf("a registered client took a scope it registered: %d %v", status, out)
	}
	// Its own token, with no scope, it still gets.
	status, out := cc(svc, "")
	if status != 200 || out["scope"] != "" {
		t.Fatalf("client_credentials without scope: %d %v", status, out)
	}
	if got := e.introspect(str(out, "access_token"), "rs", "rs-secret"); got["active"] != true || got["scope"] != "" {
		t.Fatalf("introspected by a resource server: %v", got)
	}
	// A client an admin configured keeps the scopes it was given.
	if resp, out := e.token(url.Values{"grant_type": {"client_credentials"}, "scope": {"reports:read"}}, "svc", "svc-secret"); resp.StatusCode != 200 {
		t.Fatalf("configured client: %d %v", resp.StatusCode, out)
	}
}

// TestPushesWithoutCredentialsAreBoundedPerAddress: a public client
// pushes authorization requests with nothing but its client_id, so
// anyone can. Each push is a stored record of up to 16 KiB; capped per
// client only, one stranger could hold 5000 of them per public client
// and window, and under open registration register public clients for
// more. From one address, pushes without client authentication are few.
func TestPushesWithoutCredentialsAreBoundedPerAddress(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	other := e.register(map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none"}, "")
	push := func(client string) int {
		q := authParams(client)
		q.Set("state", strings.Repeat("s", 2000))
		resp, _ := e.push(q, "", "")
		return resp.StatusCode
	}
	limited := 0
	for i := range 200 {
		client := "spa"
		if i%2 == 1 {
			client = other.ID
		}
		if s := push(client); s == http.StatusTooManyRequests {
			limited++
		} else if s != http.StatusCreated {
			t.Fatalf("push %d: %d", i, s)
		}
	}
	if limited == 0 {
		t.Fatal("200 unauthenticated pushes from one address, none refused")
	}
	// A confidential client authenticates: its pushes count per client.
	if resp, body := e.push(authParams("conf"), "conf", confSecret); resp.StatusCode != http.StatusCreated {
		t.Fatalf("confidential client after the address's limit: %d %v", resp.StatusCode, body)
	}
	// The window passes.
	e.clock.Advance(10 * time.Minute)
	if s := push("spa"); s != http.StatusCreated {
		t.Fatalf("after the window: %d", s)
	}
}

// TestAnotherClientsCodeIsAudited: a client presenting a code issued to
// another (stolen from a log, a referrer, a shared redirect URI) gets
// nothing, and the attempt is in the audit log as a refresh token or a
// device code of another client is.
func TestAnotherClientsCodeIsAudited(t *testing.T) {
	e, ab := regEnv(t, provider.RegistrationOff)
	cb := e.login(e.browser(), authParams("conf"))
	stolen := codeForm(cb.Get("code"))
	stolen.Set("client_id", "post")
	stolen.Set("client_secret", "post-secret")
	if resp, out := e.token(stolen, "", ""); resp.StatusCode != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("another client's code: %d %v", resp.StatusCode, out)
	}
	got := ab.events(audit.TokenMisuse)
	if len(got) != 1 || got[0]["client"] != "post" {
		t.Fatalf("audit token_misuse lines: %v", got)
	}
	// The code's own client still redeems it.
	if resp, out := e.token(codeForm(cb.Get("code")), "conf", confSecret); resp.StatusCode != 200 {
		t.Fatalf("own client after the attempt: %d %v", resp.StatusCode, out)
	}
}

// TestDeletedClientLeavesNoSecret: a client_secret_jwt client's secret
// is kept in the clear (it keys HMAC); deleting the registration (RFC
// 7592) must not leave it behind in the store, nor must an update to a
// method that needs no secret.
func TestDeletedClientLeavesNoSecret(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	plain := func(id string) bool {
		_, err := e.st.Get(t.Context(), "client-hmac:"+id)
		return err == nil
	}
	jwtMeta := meta("token_endpoint_auth_method", "client_secret_jwt")
	gone := e.register(jwtMeta, "")
	if !plain(gone.ID) {
		t.Fatal("the test's premise: a client_secret_jwt client's secret is kept")
	}
	if resp, m := e.jsonRequest(http.MethodDelete, gone.URI, gone.RAT, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %v", resp.StatusCode, m)
	}
	if plain(gone.ID) {
		t.Error("a deleted client's secret is still in the store")
	}
	changed := e.register(jwtMeta, "")
	upd := meta("client_id", changed.ID, "token_endpoint_auth_method", "private_key_jwt",
		"jwks", map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256",
			"x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}}})
	if resp, m := e.jsonRequest(http.MethodPut, changed.URI, changed.RAT, upd); resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %d %v", resp.StatusCode, m)
	}
	if plain(changed.ID) {
		t.Error("the secret of a client that no longer signs with it is still in the store")
	}
}

// nativeSub signs alice in for a registered public native client with
// redirect, allows everything, redeems the code and returns the sub the
// client sees at userinfo.
func (e *env) nativeSub(id, redirect string) string {
	e.t.Helper()
	issuerHost := e.srv.Listener.Addr().String()
	b := e.browser()
	b.c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if r.URL.Host != issuerHost {
			return http.ErrUseLastResponse
		}
		return nil
	}
	q := authParams(id)
	q.Set("redirect_uri", redirect)
	_, page := e.toConsent(b, q)
	var all []string
	for it := range consentPage(e.t, page) {
		all = append(all, it)
	}
	resp, _ := e.answer(b, page, "allow", all...)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		e.t.Fatalf("callback %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	f := codeForm(loc.Query().Get("code"))
	f.Set("redirect_uri", redirect)
	f.Set("client_id", id)
	r, tok := e.token(f, "", "")
	if r.StatusCode != 200 {
		e.t.Fatalf("token: %d %v", r.StatusCode, tok)
	}
	_, info := e.userinfo(str(tok, "access_token"))
	return str(info, "sub")
}

// TestPairwiseNativeClientsDoNotShareASector: OIDC Core §8.1 makes the
// sector of a client without sector_identifier_uri the host of its
// redirect URI. A native client's redirect URI is a custom scheme (no
// host) or loopback, so every such pairwise client — any stranger's
// among them, under open registration — shares one sector ("" or
// 127.0.0.1) and sees the same pairwise sub as every other: pairwise
// subjects stop keeping them from correlating a person.
func TestPairwiseNativeClientsDoNotShareASector(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	native := func(redirect string) registered {
		return e.register(map[string]any{"redirect_uris": []string{redirect}, "application_type": "native",
			"token_endpoint_auth_method": "none", "subject_type": "pairwise"}, "")
	}
	one, two := native("com.example.one:/cb"), native("com.evil.two:/cb")
	a, b := e.nativeSub(one.ID, "com.example.one:/cb"), e.nativeSub(two.ID, "com.evil.two:/cb")
	if a == "" || a == e.alice.Subject || a == b {
		t.Fatalf("two unrelated native pairwise clients see subs %q and %q", a, b)
	}
}

// TestSilentAuthenticationHonoursTheHint: a relying party that checks
// silently (prompt=none) whether the person it knows (id_token_hint) is
// still signed in must not be handed another person's authorization
// (OIDC Core §3.1.2.2: otherwise an error such as login_required).
func TestSilentAuthenticationHonoursTheHint(t *testing.T) {
	e := newEnv(t, "")
	if _, err := e.users.Create(t.Context(), users.User{Username: "bob", Email: "bob@example.com"}, "bob's long password 1"); err != nil {
		t.Fatal(err)
	}
	_, tok := e.token(codeForm(e.login(e.browser(), authParams("conf")).Get("code")), "conf", confSecret)
	b := e.browser()
	resp, page := b.get(e.authURL(authParams("conf")))
	f := loginForm(page)
	f.Set("username", "bob")
	f.Set("password", "bob's long password 1")
	m := formAction.FindStringSubmatch(page)
	resp, page = b.post(resp.Request.URL.ResolveReference(mustURL(t, html.UnescapeString(m[1]))).String(), f)
	if callbackQuery(t, resp, page).Get("code") == "" {
		t.Fatal("bob did not sign in")
	}
	q := with(authParams("conf"), "prompt", "none")
	q.Set("id_token_hint", str(tok, "id_token"))
	resp, page = b.get(e.authURL(q))
	if cb := callbackQuery(t, resp, page); cb.Get("error") != "login_required" {
		t.Fatalf("prompt=none with alice's hint in bob's browser: %v", cb)
	}
}

// TestRegisteredClientsAreNoOpenRedirector: under open registration a
// stranger registers https://evil.example/ and then has links on the
// provider's own domain that redirect there at once, with no one signed
// in and nothing asked — an authorization request with an error, a
// sign-out with a post-logout URI — for phishing that shows the
// provider's address (RFC 9700 §4.11.2).
func TestRegisteredClientsAreNoOpenRedirector(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	r := e.register(map[string]any{"redirect_uris": []string{"https://evil.example/"}, "post_logout_redirect_uris": []string{"https://evil.example/bye"}}, "")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, u := range []string{
		e.issuer + "/authorize?" + url.Values{"client_id": {r.ID}, "redirect_uri": {"https://evil.example/"}, "response_type": {"bogus"}}.Encode(),
		e.issuer + "/logout?" + url.Values{"client_id": {r.ID}, "post_logout_redirect_uri": {"https://evil.example/bye"}}.Encode(),
	} {
		resp, err := noFollow.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "https://evil.example/") {
			t.Errorf("%s redirects at once to %s", u, loc)
		}
	}
}

// TestRegisteredClientCannotAimTheProviderAtTheInternalNetwork: past
// its own machine, the provider still fetches (jwks_uri, request_uris,
// sector_identifier_uri) and posts (backchannel_logout_uri) to any https
// address a stranger registers, on the private network included, and
// sector_identifier_uri answers with the status it got — a scanner of
// internal https services. TLS verification keeps DNS tricks from
// reaching what has no certificate for the registered name, and no
// redirect is followed; a private address or internal name is reached.
func TestRegisteredClientCannotAimTheProviderAtTheInternalNetwork(t *testing.T) {
	e, srv := httpsRegEnv(t, provider.RegistrationOpen)
	for _, body := range []map[string]any{
		meta("backchannel_logout_uri", "https://10.0.0.7/admin/reset"),
		meta("token_endpoint_auth_method", "private_key_jwt", "jwks_uri", "https://192.168.1.1/jwks"),
		meta("request_uris", uris("https://[fd00::7]/req")),
	} {
		if resp, m := e.jsonRequest(http.MethodPost, srv.URL+"/register", "", body); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%v: %d %v", body, resp.StatusCode, m)
		}
	}
}

// TestStrangerCannotLockAClientOut: regulation by client id counts the
// failures of anyone who names the client, so a stranger sending a
// handful of wrong secrets for a confidential client's (public) id
// from his own address bans it, and the client itself — right secret,
// other address — is refused code exchanges and refreshes for as long
// as he keeps it up.
func TestStrangerCannotLockAClientOut(t *testing.T) {
	e := newEnv(t, "", regulated)
	from := func(ip string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.p.ServeHTTP(w, r.WithContext(regulate.WithClientIP(r.Context(), ip)))
		}))
		t.Cleanup(s.Close)
		return s
	}
	attacker, owner := from("203.0.113.9"), from("198.51.100.7")
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"reports:read"}}
	send := func(srv *httptest.Server, secret string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/idp/token", strings.NewReader(cc.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", secret)
		resp, _ := doJSON(t, req)
		return resp.StatusCode
	}
	for range 30 {
		send(attacker, "guess")
		e.clock.Advance(time.Minute)
	}
	if s := send(owner, "svc-secret"); s != http.StatusOK {
		t.Fatalf("the client with its right secret, from its own address: %d", s)
	}
}

// The hint's own person goes straight through; another client's hint is
// refused; without prompt=none, someone else's session asks for a new
// sign-in, the hinted account prefilled.
func TestIDTokenHintAtAuthorize(t *testing.T) {
	e := newEnv(t, "")
	alice := e.browser()
	_, tok := e.token(codeForm(e.login(alice, authParams("conf")).Get("code")), "conf", confSecret)
	q := with(authParams("conf"), "prompt", "none", "id_token_hint", str(tok, "id_token"))
	if cb := e.login(alice, q); cb.Get("code") == "" {
		t.Fatalf("alice with her own hint: %v", cb)
	}
	if cb := e.login(alice, with(authParams("post"), "id_token_hint", str(tok, "id_token"))); cb.Get("error") != "invalid_request" {
		t.Fatalf("a hint issued to another client: %v", cb)
	}
	if cb := e.login(alice, with(authParams("conf"), "id_token_hint", "not.a.jwt")); cb.Get("error") != "invalid_request" {
		t.Fatalf("a garbage hint: %v", cb)
	}
	// A browser signed in as nobody in particular (a fresh one) with
	// alice's hint: the login page, alice's name in it.
	resp, page := e.browser().get(e.authURL(with(authParams("conf"), "id_token_hint", str(tok, "id_token"))))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("hint without a session: %d", resp.StatusCode)
	}
}

// What a registered client's error shows instead: the error, and a link
// on the person may follow; prompt=none still answers at once.
func TestRegisteredClientErrorInterstitial(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	r := e.register(map[string]any{"redirect_uris": []string{"https://evil.example/"}}, "")
	q := url.Values{"client_id": {r.ID}, "redirect_uri": {"https://evil.example/"}, "response_type": {"bogus"}, "state": {"s1"}}
	resp, page := e.browser().get(e.authURL(q))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "unsupported_response_type") ||
		!strings.Contains(page, `href="https://evil.example/?error=unsupported_response_type`) || !strings.Contains(page, "state=s1") {
		t.Fatalf("interstitial (%d):\n%s", resp.StatusCode, page)
	}
	q.Set("prompt", "none")
	q.Set("response_type", "code")
	q.Set("scope", "openid")
	q.Set("code_challenge", challenge(verifier))
	q.Set("code_challenge_method", "S256")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp2, err := noFollow.Get(e.authURL(q))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if loc := resp2.Header.Get("Location"); !strings.HasPrefix(loc, "https://evil.example/?") || !strings.Contains(loc, "login_required") {
		t.Fatalf("prompt=none: %d %s", resp2.StatusCode, loc)
	}
}
