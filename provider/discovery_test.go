package provider_test

import (
	"context"
	"encoding/json"
	"github.com/go-jose/go-jose/v4"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func (e *env) discovery() map[string]any {
	e.t.Helper()
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) jwks() jose.JSONWebKeySet {
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
	return set
}

func strList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestDiscoveryMatchesBehaviour(t *testing.T) {
	e := newEnv(t, "")
	d := e.discovery()
	for k, want := range map[string]string{
		"issuer": e.issuer, "authorization_endpoint": e.issuer + "/authorize", "token_endpoint": e.issuer + "/token",
		"userinfo_endpoint": e.issuer + "/userinfo", "jwks_uri": e.issuer + "/jwks", "end_session_endpoint": e.issuer + "/logout",
		"check_session_iframe": e.issuer + "/check_session",
	} {
		if d[k] != want {
			t.Errorf("%s = %v, want %s", k, d[k], want)
		}
	}
	for _, k := range []string{"request_parameter_supported", "request_uri_parameter_supported", "require_request_uri_registration"} {
		if d[k] != true {
			t.Errorf("%s = %v", k, d[k])
		}
	}
	if !slices.Equal(strList(d["subject_types_supported"]), []string{"public", "pairwise"}) {
		t.Errorf("subject_types_supported %v", d["subject_types_supported"])
	}
	// Every advertised prompt value is accepted, and every scope.
	b := e.browser()
	e.login(b, authParams("conf"))
	for _, p := range strList(d["prompt_values_supported"]) {
		resp, page := b.get(e.authURL(with(authParams("conf"), "prompt", p)))
		if resp.StatusCode == http.StatusFound {
			if cb := callbackQuery(t, resp, page); cb.Get("error") != "" {
				t.Errorf("advertised prompt %s refused: %v", p, cb)
			}
		} else if resp.StatusCode != 200 {
			t.Errorf("prompt %s: %d", p, resp.StatusCode)
		}
	}
	// Every advertised response type and mode works for a client allowed
	// them (tp), once it has consent.
	e.consented(b)
	for _, rt := range strList(d["response_types_supported"]) {
		for _, mode := range strList(d["response_modes_supported"]) {
			if mode == "query" && rt != "code" && rt != "none" {
				continue // tokens never travel in the query
			}
			q := with(tpParams("openid profile"), "response_type", rt, "response_mode", mode)
			resp, page := b.get(e.authURL(q))
			ok := resp.StatusCode == http.StatusFound && !strings.Contains(resp.Header.Get("Location"), "error=") ||
				resp.StatusCode == http.StatusOK && strings.Contains(page, `name="state" value="st-1"`) && !strings.Contains(page, `name="error"`)
			if !ok {
				t.Errorf("advertised response_type %q with response_mode %s: %d %s", rt, mode, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}
	scopes := strList(d["scopes_supported"])
	cb := e.login(b, with(authParams("conf"), "scope", strings.Join(scopes, " ")))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	if granted := strings.Fields(tok["scope"].(string)); !slices.Equal(slices.Sorted(slices.Values(granted)), scopes) {
		t.Errorf("asked for every advertised scope %v, granted %v", scopes, granted)
	}
	// Every claim the ID token carries is advertised.
	_, c := e.idTokenParts(tok["id_token"].(string), jose.RS256, "conf")
	supported := strList(d["claims_supported"])
	for k := range c {
		if !slices.Contains(supported, k) {
			t.Errorf("ID token claim %s is not in claims_supported", k)
		}
	}
	// Endpoints refuse what discovery does not offer.
	for _, u := range []string{e.issuer + "/.well-known/openid-configuration", e.issuer + "/jwks"} {
		resp, err := http.Post(u, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Errorf("POST %s: %d", u, resp.StatusCode)
		}
	}
	resp, err := http.Get(e.issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/jwk-set+json" && ct != "application/json" {
		t.Errorf("JWKS content type %q", ct)
	}
}

func TestDiscoveryAndRotation(t *testing.T) {
	e := newEnv(t, "")
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	str := func(k string) string { s, _ := d[k].(string); return s }
	list := func(k string) []string {
		var out []string
		for _, v := range d[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if str("issuer") != e.issuer || str("authorization_endpoint") != e.issuer+"/authorize" || str("token_endpoint") != e.issuer+"/token" ||
		str("userinfo_endpoint") != e.issuer+"/userinfo" || str("jwks_uri") != e.issuer+"/jwks" {
		t.Fatalf("endpoints %v", d)
	}
	for k, want := range map[string][]string{
		"response_types_supported": {"code", "code id_token", "code id_token token", "code token", "id_token", "id_token token", "none"},
		"response_modes_supported": {"query", "fragment", "form_post"},
		"grant_types_supported":    {"authorization_code", "implicit", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"}, "code_challenge_methods_supported": {"S256"},
		"id_token_signing_alg_values_supported": {"RS256"}, "acr_values_supported": {"1"},
		"token_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"},
	} {
		if got := list(k); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if d["authorization_response_iss_parameter_supported"] != true {
		t.Error("iss parameter not advertised")
	}
	for _, ep := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"} {
		if resp, err := http.Head(str(ep)); err != nil || resp.StatusCode == 404 {
			t.Errorf("%s %s not served", ep, str(ep))
		}
	}

	b := e.browser()
	code := e.login(b, authParams("conf")).Get("code")
	_, tok := e.token(codeForm(code), "conf", confSecret)
	oldKid := kidOf(t, tok["id_token"].(string))
	newKid, err := e.keys.Rotate(context.Background())
	if err != nil || newKid == oldKid {
		t.Fatalf("rotate: %q %v", newKid, err)
	}
	code = e.login(b, authParams("conf")).Get("code")
	_, tok = e.token(codeForm(code), "conf", confSecret)
	if kid := kidOf(t, tok["id_token"].(string)); kid != newKid {
		t.Fatalf("new token kid %q, want %q", kid, newKid)
	}
	e.verifyIDToken(tok["id_token"].(string), "RS256")
	resp, _ = http.Get(e.issuer + "/jwks")
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), oldKid) || !strings.Contains(string(body), newKid) {
		t.Fatalf("JWKS after rotation lacks a key: %s", body)
	}
	if strings.Contains(string(body), `"d"`) {
		t.Fatal("JWKS leaks private key material")
	}
}
