package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/internal/logtest"
	"github.com/gatehouse-idp/gatehouse/provider"
)

// auditBuffer collects audit lines.
type auditBuffer struct{ logtest.Buffer }

// events returns the audit lines with event ev.
func (a *auditBuffer) events(ev string) []map[string]any {
	return a.Records(func(m map[string]any) bool { return m["event"] == ev })
}

// count is how many lines have event (and, when given, contain more).
func (a *auditBuffer) count(event, more string) int {
	n := 0
	for _, l := range strings.Split(a.String(), "\n") {
		if strings.Contains(l, `"event":"`+event+`"`) && strings.Contains(l, more) {
			n++
		}
	}
	return n
}

// regEnv is an env whose provider takes registrations under policy,
// with a generous limit per address unless opts say otherwise.
func regEnv(t *testing.T, policy string, opts ...func(*provider.Config)) (*env, *auditBuffer) {
	t.Helper()
	ab := &auditBuffer{}
	all := append([]func(*provider.Config){func(c *provider.Config) {
		c.Registration = policy
		c.RegistrationsPerIP = 1000
		c.Audit = audit.New(slog.New(slog.NewJSONHandler(ab, nil)))
	}}, opts...)
	return newEnv(t, "", all...), ab
}

// jsonRequest sends body (JSON-encoded unless it is a string) to path
// with an optional Bearer token.
func (e *env) jsonRequest(method, path, bearer string, body any) (*http.Response, map[string]any) {
	e.t.Helper()
	var rd *strings.Reader
	switch b := body.(type) {
	case nil:
		rd = strings.NewReader("")
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = e.issuer + path
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return doJSON(e.t, req)
}

// registered is a client as the registration endpoint answered.
type registered struct {
	ID, Secret, RAT, URI string
	Info                 map[string]any
}

// register registers meta and fails the test unless it gets 201.
func (e *env) register(meta map[string]any, iat string) registered {
	e.t.Helper()
	resp, m := e.jsonRequest(http.MethodPost, "/register", iat, meta)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("register: %d %v", resp.StatusCode, m)
	}
	return registered{ID: str(m, "client_id"), Secret: str(m, "client_secret"), RAT: str(m, "registration_access_token"),
		URI: str(m, "registration_client_uri"), Info: m}
}

func webClient() map[string]any {
	return map[string]any{"redirect_uris": []string{redirectURI}, "client_name": "Registered App"}
}

func TestRegistrationPolicies(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		e, _ := regEnv(t, "")
		_, disc := doJSON(t, mustRequest(t, http.MethodGet, e.issuer+"/.well-known/openid-configuration"))
		if _, ok := disc["registration_endpoint"]; ok {
			t.Fatalf("registration_endpoint advertised while off: %v", disc["registration_endpoint"])
		}
		for _, tc := range []struct{ method, path string }{{"POST", "/register"}, {"GET", "/register/conf"}, {"DELETE", "/register/conf"}} {
			resp, m := e.jsonRequest(tc.method, tc.path, "x", webClient())
			if resp.StatusCode != http.StatusForbidden || m["error"] != "access_denied" || !strings.Contains(str(m, "error_description"), "turned off") {
				t.Errorf("%s %s while off: %d %v", tc.method, tc.path, resp.StatusCode, m)
			}
		}
	})
	t.Run("open", func(t *testing.T) {
		e, _ := regEnv(t, provider.RegistrationOpen)
		_, disc := doJSON(t, mustRequest(t, http.MethodGet, e.issuer+"/.well-known/openid-configuration"))
		if disc["registration_endpoint"] != e.issuer+"/register" {
			t.Fatalf("registration_endpoint = %v", disc["registration_endpoint"])
		}
		e.register(webClient(), "")
		resp, m := e.jsonRequest(http.MethodGet, "/register", "", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || m["error"] != "invalid_request" {
			t.Errorf("GET /register: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("initial access token", func(t *testing.T) {
		e, ab := regEnv(t, provider.RegistrationInitialAccessToken)
		ctx := context.Background()
		if _, _, err := e.p.NewInitialAccessToken(ctx, time.Hour, 0); err == nil {
			t.Error("a token good for no registration was made")
		}
		if _, _, err := e.p.NewInitialAccessToken(ctx, 0, 1); err == nil {
			t.Error("a token without lifetime was made")
		}
		two, _, err := e.p.NewInitialAccessToken(ctx, time.Hour, 2)
		if err != nil {
			t.Fatal(err)
		}
		short, exp, _ := e.p.NewInitialAccessToken(ctx, time.Minute, 5)
		if !exp.Equal(e.clock.Now().Add(time.Minute)) {
			t.Errorf("expiry %v", exp)
		}
		for name, tok := range map[string]string{"absent": "", "wrong": two + "x", "another kind of token": "conf"} {
			resp, m := e.jsonRequest(http.MethodPost, "/register", tok, webClient())
			if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_token" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s initial access token: %d %v", name, resp.StatusCode, m)
			}
		}
		if len(ab.events(audit.TokenMisuse)) != 2 {
			t.Errorf("refused initial access tokens audited %d times, want 2", len(ab.events(audit.TokenMisuse)))
		}
		// Bad metadata does not use the token up.
		if resp, m := e.jsonRequest(http.MethodPost, "/register", two, map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}); resp.StatusCode != 400 {
			t.Fatalf("bad metadata: %d %v", resp.StatusCode, m)
		}
		e.register(webClient(), two)
		e.register(webClient(), two)
		if resp, m := e.jsonRequest(http.MethodPost, "/register", two, webClient()); resp.StatusCode != 401 || m["error"] != "invalid_token" {
			t.Fatalf("third use of a two-use token: %d %v", resp.StatusCode, m)
		}
		e.clock.Advance(2 * time.Minute)
		if resp, m := e.jsonRequest(http.MethodPost, "/register", short, webClient()); resp.StatusCode != 401 {
			t.Fatalf("expired token: %d %v", resp.StatusCode, m)
		}
		if got := ab.events(audit.ClientRegistered); len(got) != 2 || got[0]["reason"] != "registered (initial_access_token)" || got[0]["client"] == "" {
			t.Errorf("audit of registrations: %v", got)
		}
	})
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestInitialAccessTokenUsedOnceUnderConcurrency(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationInitialAccessToken)
	tok, _, err := e.p.NewInitialAccessToken(context.Background(), time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(webClient())
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/register", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusUnauthorized:
		default:
			t.Errorf("status %d", c)
		}
	}
	if created != 1 {
		t.Fatalf("a one-use token registered %d clients", created)
	}
}

func TestRegistrationAnswerAndDefaults(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	meta := map[string]any{
		"redirect_uris": []string{redirectURI}, "client_name": "Registered App", "logo_uri": "https://app.example/logo.png",
		"client_uri": "https://app.example/", "policy_uri": "https://app.example/policy", "tos_uri": "https://app.example/tos",
		"contacts": []string{"ops@app.example"}, "default_max_age": 3600, "require_auth_time": true,
		"default_acr_values": []string{"1"}, "initiate_login_uri": "https://app.example/login",
		"software_id": "4NRB1-0XZABZI9E6-5SM3R", "software_version": "2.1",
		"post_logout_redirect_uris": []string{"https://app.example/bye"}, "backchannel_logout_uri": "https://app.example/bcl",
		"scope":       "openid profile",
		"first_party": true, "resource_server": true, // only admins give these
		"unknown_field": map[string]any{"ignored": true}, "client_name#fr": "Appli",
	}
	r := e.register(meta, "")
	m := r.Info
	if len(r.ID) != 32 || r.Secret == "" || r.RAT == "" || r.URI != e.issuer+"/register/"+r.ID {
		t.Fatalf("answer: %v", m)
	}
	if m["client_secret_expires_at"] != float64(0) || m["client_id_issued_at"] != float64(e.clock.Now().Unix()) {
		t.Errorf("dates: %v %v", m["client_secret_expires_at"], m["client_id_issued_at"])
	}
	want := map[string]any{
		"response_types": []any{"code"}, "grant_types": []any{"authorization_code"}, "token_endpoint_auth_method": "client_secret_basic",
		"application_type": "web", "id_token_signed_response_alg": "RS256", "subject_type": "public",
	}
	for k, v := range meta {
		if k != "first_party" && k != "resource_server" && k != "unknown_field" && k != "client_name#fr" {
			want[k] = v
		}
	}
	for k, v := range want {
		got, _ := json.Marshal(m[k])
		exp, _ := json.Marshal(v)
		if !bytes.Equal(got, exp) {
			t.Errorf("%s = %s, want %s", k, got, exp)
		}
	}
	for _, k := range []string{"first_party", "resource_server", "unknown_field", "client_name#fr", "secret_hash", "registration_token_hash", "static"} {
		if _, ok := m[k]; ok {
			t.Errorf("answer has %s: %v", k, m[k])
		}
	}
	// The store keeps hashes only.
	raw, err := e.st.Get(context.Background(), "client:"+r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(r.Secret)) || bytes.Contains(raw, []byte(r.RAT)) {
		t.Fatal("the store holds the secret or the registration access token in clear")
	}
	c, err := e.clients.Get(context.Background(), r.ID)
	if err != nil || c.FirstParty || c.ResourceServer || c.Name != "Registered App" || c.RegisteredAt.IsZero() || !c.CheckSecret(r.Secret) {
		t.Fatalf("stored client %+v %v", c, err)
	}
	list, _ := e.clients.List(context.Background())
	if !slices.ContainsFunc(list, func(c provider.Client) bool { return c.ID == r.ID && !c.RegisteredAt.IsZero() }) {
		t.Error("the registered client is not listed as registered")
	}

	// A public native client: no secret, none, custom scheme.
	pub := e.register(map[string]any{"redirect_uris": []string{"com.example.app:/cb", "http://127.0.0.1:5000/cb"},
		"token_endpoint_auth_method": "none", "application_type": "native", "grant_types": []string{"authorization_code", "refresh_token"}}, "")
	if pub.Secret != "" || pub.Info["client_secret_expires_at"] != nil || pub.Info["token_endpoint_auth_method"] != "none" {
		t.Fatalf("public client answer: %v", pub.Info)
	}
	// Grant types follow the response types when not given.
	imp := e.register(map[string]any{"redirect_uris": []string{"https://spa.example/cb"}, "response_types": []string{"id_token token", "code"}}, "")
	if g, _ := json.Marshal(imp.Info["grant_types"]); string(g) != `["authorization_code","implicit"]` {
		t.Errorf("grant types from response types: %s", g)
	}
	svc := e.register(map[string]any{"grant_types": []string{"client_credentials"}}, "")
	if svc.Info["response_types"] != nil || svc.Secret == "" {
		t.Errorf("client_credentials client: %v", svc.Info)
	}
}

// codeFlow signs alice in for a registered client and redeems the code.
func (e *env) codeFlow(r registered, redirect string) (int, map[string]any) {
	e.t.Helper()
	q := authParams(r.ID)
	q.Set("redirect_uri", redirect)
	cb := e.loginAllowing(q) // a registered client is a third party
	f := codeForm(cb.Get("code"))
	f.Set("redirect_uri", redirect)
	resp, tok := e.token(f, r.ID, r.Secret)
	return resp.StatusCode, tok
}

func TestRegisteredClientSignsIn(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	// The RFC 7591 default grant: authorization_code only, so no refresh
	// token, and the refresh grant is refused.
	only := e.register(webClient(), "")
	status, tok := e.codeFlow(only, redirectURI)
	if status != 200 || str(tok, "access_token") == "" || str(tok, "id_token") == "" || str(tok, "refresh_token") != "" {
		t.Fatalf("code flow of a registered client: %d %v", status, tok)
	}
	e.idTokenParts(str(tok, "id_token"), "RS256", only.ID)
	if resp, m := e.token(refreshForm("x.y"), only.ID, only.Secret); resp.StatusCode != 400 || m["error"] != "unauthorized_client" {
		t.Fatalf("refresh by a client without the grant: %d %v", resp.StatusCode, m)
	}
	if resp, m := e.userinfo(str(tok, "access_token")); resp.StatusCode != 200 || m["sub"] == nil {
		t.Fatalf("userinfo: %d %v", resp.StatusCode, m)
	}
	// client_secret_basic is what it registered: the post method is refused.
	f := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {only.ID}, "client_secret": {only.Secret}}
	if resp, m := e.token(f, "", ""); resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Fatalf("client_secret_post for a basic client: %d %v", resp.StatusCode, m)
	}

	full := e.register(map[string]any{"redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code", "refresh_token"}}, "")
	status, tok = e.codeFlow(full, redirectURI)
	if status != 200 || str(tok, "refresh_token") == "" {
		t.Fatalf("code flow with refresh: %d %v", status, tok)
	}
	if s, next := e.refresh(str(tok, "refresh_token"), full.ID, full.Secret); s != 200 {
		t.Fatalf("refresh: %d %v", s, next)
	}
}

func TestRegistrationPerAddressAndTotalLimits(t *testing.T) {
	e, ab := regEnv(t, provider.RegistrationOpen, func(c *provider.Config) { c.RegistrationsPerIP = 3 })
	e.register(webClient(), "")
	// Refused requests count too: they cost work (a sector fetch).
	if resp, _ := e.jsonRequest(http.MethodPost, "/register", "", map[string]any{"redirect_uris": []string{"http://evil.example/cb"}}); resp.StatusCode != 400 {
		t.Fatal(resp.StatusCode)
	}
	e.register(webClient(), "")
	resp, m := e.jsonRequest(http.MethodPost, "/register", "", webClient())
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3600" || m["error"] != "invalid_request" {
		t.Fatalf("fourth registration in an hour: %d %v %q", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
	if len(ab.events(audit.RateLimited)) != 1 {
		t.Error("the refusal was not audited")
	}
	e.clock.Advance(time.Hour)
	e.register(webClient(), "")

	e2, _ := regEnv(t, provider.RegistrationOpen, func(c *provider.Config) { c.MaxRegisteredClients = 2 })
	a := e2.register(webClient(), "")
	e2.register(webClient(), "")
	if resp, m := e2.jsonRequest(http.MethodPost, "/register", "", webClient()); resp.StatusCode != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" {
		t.Fatalf("registration past the total: %d %v", resp.StatusCode, m)
	}
	// A deletion makes room again.
	if resp, _ := e2.jsonRequest(http.MethodDelete, a.URI, a.RAT, nil); resp.StatusCode != 204 {
		t.Fatal(resp.StatusCode)
	}
	e2.register(webClient(), "")
}

func TestRegistrationBodyLimits(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	big := fmt.Sprintf(`{"redirect_uris":["%s"],"client_name":"%s"}`, redirectURI, strings.Repeat("n", 70<<10))
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"form body", "application/x-www-form-urlencoded", "redirect_uris=https://app.example/callback", 415, "invalid_request"},
		{"no content type", "", `{"redirect_uris":["https://app.example/callback"]}`, 415, "invalid_request"},
		{"oversized", "application/json", big, 400, "invalid_client_metadata"},
		{"not JSON", "application/json", `{"redirect_uris":`, 400, "invalid_client_metadata"},
		{"array", "application/json", `["https://app.example/callback"]`, 400, "invalid_client_metadata"},
		{"null", "application/json", `null`, 400, "invalid_client_metadata"},
		{"json with charset", "application/json; charset=utf-8", `{"redirect_uris":["https://app.example/callback"]}`, 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/register", strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, m := doJSON(t, req)
			if resp.StatusCode != tc.status || tc.code != "" && (m["error"] != tc.code || str(m, "error_description") == "") {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
}
