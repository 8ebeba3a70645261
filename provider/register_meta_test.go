package provider_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/provider"
)

// meta is a valid web client's metadata with kv set (a nil value
// removes the field).
func meta(kv ...any) map[string]any {
	m := map[string]any{"redirect_uris": []string{redirectURI}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

func uris(u ...string) []string { return u }

// TestRegistrationRefusesBadMetadata: every rule of RFC 7591 §2 and §3.2.2
// and OIDC Dynamic Client Registration §2 that a request can break.
func TestRegistrationRefusesBadMetadata(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	before, err := e.clients.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	configured := len(before)
	const badURI, badMeta = "invalid_redirect_uri", "invalid_client_metadata"
	long := strings.Repeat("a", 2100)
	many := make([]string, 40)
	for i := range many {
		many[i] = redirectURI
	}
	cases := []struct {
		name string
		body map[string]any
		code string
	}{
		// Redirect URIs.
		{"no redirect_uris for the code grant", meta("redirect_uris", nil), badURI},
		{"empty redirect_uris", meta("redirect_uris", []string{}), badURI},
		{"no redirect_uris for implicit", meta("redirect_uris", nil, "response_types", []string{"id_token"}, "grant_types", []string{"implicit"}), badURI},
		{"relative", meta("redirect_uris", uris("/callback")), badURI},
		{"no scheme", meta("redirect_uris", uris("app.example/callback")), badURI},
		{"fragment", meta("redirect_uris", uris(redirectURI+"#frag")), badURI},
		{"empty fragment", meta("redirect_uris", uris(redirectURI+"#")), badURI},
		{"javascript", meta("redirect_uris", uris("javascript:alert(1)")), badURI},
		{"JavaScript upper case", meta("redirect_uris", uris("JavaScript://x/%0aalert(1)")), badURI},
		{"data", meta("redirect_uris", uris("data:text/html,<script>alert(1)</script>")), badURI},
		{"file", meta("redirect_uris", uris("file:///etc/passwd")), badURI},
		{"vbscript", meta("redirect_uris", uris("vbscript:msgbox")), badURI},
		{"http not loopback", meta("redirect_uris", uris("http://app.example/callback")), badURI},
		{"http loopback lookalike", meta("redirect_uris", uris("http://127.0.0.1.evil.example/cb")), badURI},
		{"http localhost lookalike", meta("redirect_uris", uris("http://localhost.evil.example/cb")), badURI},
		{"https without host", meta("redirect_uris", uris("https:///callback")), badURI},
		{"user info", meta("redirect_uris", uris("https://user:pw@app.example/cb")), badURI},
		{"custom scheme for a web client", meta("redirect_uris", uris("com.example.app:/cb")), badURI},
		{"web implicit over http localhost", meta("redirect_uris", uris("http://localhost/cb"), "response_types", []string{"id_token"}, "grant_types", []string{"implicit"}), badURI},
		{"web implicit on https localhost", meta("redirect_uris", uris("https://localhost/cb"), "response_types", []string{"id_token"}, "grant_types", []string{"implicit"}), badURI},
		{"native implicit on https", meta("redirect_uris", uris("https://app.example/cb"), "application_type", "native", "response_types", []string{"id_token"}, "grant_types", []string{"implicit"}), badURI},
		{"one bad among good", meta("redirect_uris", uris(redirectURI, "javascript:x")), badURI},
		{"pairwise sector does not list", meta("subject_type", "pairwise", "sector_identifier_uri", "SECTOR/list", "redirect_uris", uris("https://third.example/cb")), badURI},
		// Grant and response types.
		{"unknown grant type", meta("grant_types", []string{"password"}), badMeta},
		{"unknown response type", meta("response_types", []string{"code banana"}), badMeta},
		{"repeated response type value", meta("response_types", []string{"code code"}), badMeta},
		{"code without authorization_code", meta("response_types", []string{"code"}, "grant_types", []string{"implicit"}), badMeta},
		{"id_token without implicit", meta("response_types", []string{"id_token"}, "grant_types", []string{"authorization_code"}), badMeta},
		{"implicit without response types", meta("grant_types", []string{"implicit"}), badMeta},
		{"public client_credentials", meta("grant_types", []string{"client_credentials"}, "token_endpoint_auth_method", "none"), badMeta},
		{"response types not an array", meta("response_types", "code"), badMeta},
		// Client authentication.
		{"unknown auth method", meta("token_endpoint_auth_method", "client_secret_magic"), badMeta},
		{"auth method not a string", meta("token_endpoint_auth_method", 3), badMeta},
		{"jwks and jwks_uri", meta("jwks", map[string]any{"keys": []any{}}, "jwks_uri", "https://app.example/jwks"), badMeta},
		// Other URIs.
		{"logo_uri javascript", meta("logo_uri", "javascript:alert(1)"), badMeta},
		{"client_uri relative", meta("client_uri", "/home"), badMeta},
		{"policy_uri http", meta("policy_uri", "http://app.example/policy"), badMeta},
		{"tos_uri data", meta("tos_uri", "data:text/html,hi"), badMeta},
		{"initiate_login_uri http", meta("initiate_login_uri", "http://localhost/login"), badMeta},
		{"post_logout javascript", meta("post_logout_redirect_uris", uris("javascript:x")), badMeta},
		{"post_logout fragment", meta("post_logout_redirect_uris", uris("https://app.example/bye#x")), badMeta},
		{"backchannel http", meta("backchannel_logout_uri", "http://app.example/bcl"), badMeta},
		{"backchannel relative", meta("backchannel_logout_uri", "/bcl"), badMeta},
		{"frontchannel fragment", meta("frontchannel_logout_uri", "https://app.example/fcl#x"), badMeta},
		// Subjects and signing.
		{"bad subject_type", meta("subject_type", "secret"), badMeta},
		{"pairwise on several hosts", meta("subject_type", "pairwise", "redirect_uris", uris(redirectURI, "https://other.example/cb")), badMeta},
		{"sector over http", meta("subject_type", "pairwise", "sector_identifier_uri", "http://sector.example/list"), badMeta},
		{"sector not found", meta("subject_type", "pairwise", "sector_identifier_uri", "SECTOR/missing"), badMeta},
		{"sector not a list", meta("subject_type", "pairwise", "sector_identifier_uri", "SECTOR/object"), badMeta},
		{"sector oversized", meta("subject_type", "pairwise", "sector_identifier_uri", "SECTOR/huge"), badMeta},
		{"sector redirects", meta("subject_type", "pairwise", "sector_identifier_uri", "SECTOR/redirect"), badMeta},
		{"id_token alg none", meta("id_token_signed_response_alg", "none"), badMeta},
		{"id_token alg HS256", meta("id_token_signed_response_alg", "HS256"), badMeta},
		{"userinfo alg not ours", meta("userinfo_signed_response_alg", "ES256"), badMeta},
		// Information and sizes.
		{"application_type", meta("application_type", "desktop"), badMeta},
		{"client_name control characters", meta("client_name", "App\u0000\u001b[31m"), badMeta},
		{"client_name bidi override", meta("client_name", "Pay\u202egnikna B"), badMeta},
		{"client_name zero-width joiner", meta("client_name", "Go\u200dogle"), badMeta},
		{"client_name too long", meta("client_name", strings.Repeat("n", 201)), badMeta},
		{"client_name not a string", meta("client_name", []string{"a"}), badMeta},
		{"bad contact", meta("contacts", []string{""}), badMeta},
		{"negative default_max_age", meta("default_max_age", -1), badMeta},
		{"fractional default_max_age", meta("default_max_age", 1.5), badMeta},
		{"acr with space", meta("default_acr_values", []string{"a b"}), badMeta},
		{"bad scope", meta("scope", "openid \"quoted\""), badMeta},
		{"too many redirect URIs", meta("redirect_uris", many), badMeta},
		{"oversized URI", meta("redirect_uris", uris("https://app.example/"+long)), badMeta},
		{"oversized unknown field", meta("x-custom", long), badMeta},
		{"deep unknown field", meta("x-deep", deep(12)), badMeta},
	}
	sector := sectorServer(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if s, ok := tc.body["sector_identifier_uri"].(string); ok {
				tc.body["sector_identifier_uri"] = strings.Replace(s, "SECTOR", sector.URL, 1)
			}
			resp, m := e.jsonRequest(http.MethodPost, "/register", "", tc.body)
			if resp.StatusCode != http.StatusBadRequest || m["error"] != tc.code || str(m, "error_description") == "" {
				t.Fatalf("%d %v, want 400 %s", resp.StatusCode, m, tc.code)
			}
		})
	}
	// The same rules hold for an update.
	r := e.register(meta(), "")
	for _, tc := range cases[:5] {
		body := tc.body
		body["client_id"] = r.ID
		if resp, m := e.jsonRequest(http.MethodPut, r.URI, r.RAT, body); resp.StatusCode != 400 || m["error"] != tc.code {
			t.Errorf("update %s: %d %v", tc.name, resp.StatusCode, m)
		}
	}
	if list, _ := e.clients.List(t.Context()); len(list) != configured+1 {
		t.Errorf("%d clients after refused registrations, want the %d configured and 1 registered", len(list), configured)
	}
}

func deep(n int) any {
	var v any = "x"
	for range n {
		v = []any{v}
	}
	return v
}

// sectorServer serves sector_identifier_uri documents: /list lists
// redirectURI and https://other.example/cb only.
func sectorServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/list", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]string{redirectURI, "https://other.example/cb"})
	})
	mux.HandleFunc("/object", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"redirect_uris":[]}`)) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`["` + strings.Repeat("a", 70<<10) + `"]`))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/list", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestPairwiseRegistrationWithSector(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	sector := sectorServer(t)
	r := e.register(meta("subject_type", "pairwise", "sector_identifier_uri", sector.URL+"/list",
		"redirect_uris", uris(redirectURI, "https://other.example/cb")), "")
	if r.Info["subject_type"] != "pairwise" || r.Info["sector_identifier_uri"] != sector.URL+"/list" {
		t.Fatalf("answer %v", r.Info)
	}
	status, tok := e.codeFlow(r, redirectURI)
	if status != 200 {
		t.Fatalf("code flow: %d %v", status, tok)
	}
	_, claims := e.idTokenParts(str(tok, "id_token"), "RS256", r.ID)
	if claims["sub"] == e.alice.Subject || claims["sub"] == "" {
		t.Fatalf("pairwise client got sub %v", claims["sub"])
	}
	// One host and no sector_identifier_uri is fine too.
	e.register(meta("subject_type", "pairwise"), "")
}

// TestSectorNeedsHTTPSOnAnHTTPSProvider: plain http to loopback is for
// a provider that itself runs on http (tests, local development).
func TestSectorNeedsHTTPSOnAnHTTPSProvider(t *testing.T) {
	sector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]string{redirectURI})
	}))
	defer sector.Close()
	plain := sectorServer(t)
	// The sector is named example.com (a name in the test certificate):
	// a loopback address is refused on an https provider, https or not.
	client := sector.Client()
	tr := client.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, sector.Listener.Addr().String())
	}
	client.Transport = tr
	e, _ := regEnv(t, provider.RegistrationOpen, func(c *provider.Config) {
		c.Issuer = "https://idp.example"
		c.HTTPClient = client
	})
	srv := httptest.NewServer(e.p)
	defer srv.Close()
	post := func(sectorURI string) (*http.Response, map[string]any) {
		body, _ := json.Marshal(meta("subject_type", "pairwise", "sector_identifier_uri", sectorURI))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/register", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		return doJSON(t, req)
	}
	if resp, m := post(plain.URL + "/list"); resp.StatusCode != 400 || m["error"] != "invalid_client_metadata" {
		t.Fatalf("http sector on an https provider: %d %v", resp.StatusCode, m)
	}
	if resp, m := post(sector.URL); resp.StatusCode != 400 || m["error"] != "invalid_client_metadata" {
		t.Fatalf("https sector on loopback on an https provider: %d %v", resp.StatusCode, m)
	}
	if resp, m := post("https://example.com/"); resp.StatusCode != 201 {
		t.Fatalf("https sector: %d %v", resp.StatusCode, m)
	}
}
