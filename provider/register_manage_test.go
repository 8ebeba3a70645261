package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/provider"
)

// TestRegistrationAccessTokenMisuse: the configuration endpoint answers
// the same 401 to a missing or wrong token, another client's token, an
// unknown id, a configured client and one an admin added.
func TestRegistrationAccessTokenMisuse(t *testing.T) {
	e, ab := regEnv(t, provider.RegistrationOpen)
	a := e.register(webClient(), "")
	b := e.register(webClient(), "")
	// An admin's client, even one claiming a registration token, is not
	// managed by the configuration endpoint.
	if err := e.clients.Add(context.Background(), provider.Client{ID: "cli-added", RedirectURIs: []string{redirectURI},
		RegisteredAt: time.Now(), RegistrationTokenHash: hashOf(a.RAT)}, "cli-secret"); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, path, token string }{
		{"absent", a.URI, ""},
		{"wrong", a.URI, a.RAT + "x"},
		{"another client's", a.URI, b.RAT},
		{"the client secret", a.URI, a.Secret},
		{"unknown client", e.issuer + "/register/0123456789abcdef0123456789abcdef", a.RAT},
		{"configured client", e.issuer + "/register/conf", a.RAT},
		{"client added by an admin", e.issuer + "/register/cli-added", a.RAT},
		{"oversized id", e.issuer + "/register/" + strings.Repeat("a", 300), a.RAT},
	}
	for _, tc := range cases {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			resp, m := e.jsonRequest(method, tc.path, tc.token, webClient())
			if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_token" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: %d %v", method, tc.name, resp.StatusCode, m)
			}
		}
	}
	// Same description whether the client exists or not.
	_, unknown := e.jsonRequest(http.MethodGet, cases[4].path, a.RAT, nil)
	_, other := e.jsonRequest(http.MethodGet, a.URI, b.RAT, nil)
	if unknown["error_description"] != other["error_description"] {
		t.Errorf("an unknown client and a wrong token are told apart: %v / %v", unknown, other)
	}
	if n := len(ab.events(audit.TokenMisuse)); n != (len(cases)-1)*3+2 {
		t.Errorf("%d misuse lines, want %d", n, (len(cases)-1)*3+2)
	}
	// Nothing was changed or deleted.
	for _, id := range []string{a.ID, b.ID, "conf", "cli-added"} {
		if _, err := e.clients.Get(context.Background(), id); err != nil {
			t.Errorf("client %s: %v", id, err)
		}
	}
	resp, m := e.jsonRequest(http.MethodPost, a.URI, a.RAT, webClient())
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, PUT, DELETE" {
		t.Errorf("POST to the configuration endpoint: %d %v", resp.StatusCode, m)
	}
}

// hashOf is the provider's hash of a bearer secret (SHA-256, base64url).
func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func TestRegisteredClientReadUpdateDelete(t *testing.T) {
	e, ab := regEnv(t, provider.RegistrationOpen, func(c *provider.Config) {
		c.Clients.SetStatic(provider.Client{ID: "rs2", Secret: "rs2-secret", ClientSettings: provider.ClientSettings{
			GrantTypes: []string{provider.GrantClientCredentials}, ResourceServer: true}})
	})
	const newURI = "https://app.example/callback2"
	r := e.register(map[string]any{"redirect_uris": []string{redirectURI}, "client_name": "Before",
		"grant_types": []string{"authorization_code", "refresh_token"}, "contacts": []string{"a@app.example"}}, "")

	// Read: the registration as answered, the same token.
	resp, got := e.jsonRequest(http.MethodGet, r.URI, r.RAT, nil)
	if resp.StatusCode != 200 || got["client_id"] != r.ID || got["client_name"] != "Before" || got["registration_access_token"] != r.RAT ||
		got["client_secret"] != nil || got["registration_client_uri"] != r.URI || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("read: %d %v", resp.StatusCode, got)
	}

	// Update: full replacement; the client_id must be there and match; a
	// secret, if sent, must be the current one.
	upd := map[string]any{"client_id": r.ID, "redirect_uris": []string{newURI}, "client_name": "After",
		"grant_types": []string{"authorization_code", "refresh_token"}}
	for name, body := range map[string]map[string]any{
		"no client_id":      {"redirect_uris": []string{newURI}},
		"another client_id": {"client_id": "conf", "redirect_uris": []string{newURI}},
		"client_id number":  {"client_id": 7, "redirect_uris": []string{newURI}},
	} {
		if resp, m := e.jsonRequest(http.MethodPut, r.URI, r.RAT, body); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Errorf("update with %s: %d %v", name, resp.StatusCode, m)
		}
	}
	bad := map[string]any{"client_id": r.ID, "client_secret": "chosen-by-the-client", "redirect_uris": []string{newURI}}
	if resp, m := e.jsonRequest(http.MethodPut, r.URI, r.RAT, bad); resp.StatusCode != 400 || m["error"] != "invalid_client_metadata" {
		t.Fatalf("update choosing a secret: %d %v", resp.StatusCode, m)
	}
	if resp, m := e.jsonRequest(http.MethodPut, r.URI, r.RAT, map[string]any{"client_id": r.ID, "redirect_uris": []string{"http://app.example/cb"}}); resp.StatusCode != 400 || m["error"] != "invalid_redirect_uri" {
		t.Fatalf("update to a bad redirect URI: %d %v", resp.StatusCode, m)
	}
	upd["client_secret"] = r.Secret
	upd["registration_access_token"] = r.RAT // RFC 7592 says leave out; ignored
	resp, after := e.jsonRequest(http.MethodPut, r.URI, r.RAT, upd)
	if resp.StatusCode != 200 || after["client_name"] != "After" || after["contacts"] != nil || after["client_secret"] != nil {
		t.Fatalf("update: %d %v", resp.StatusCode, after)
	}
	rat2 := str(after, "registration_access_token")
	if rat2 == "" || rat2 == r.RAT {
		t.Fatal("the registration access token did not rotate on update")
	}
	if resp, _ := e.jsonRequest(http.MethodGet, r.URI, r.RAT, nil); resp.StatusCode != 401 {
		t.Fatalf("the old registration access token still works: %d", resp.StatusCode)
	}
	// The old redirect URI is refused at once; the new one works, with
	// the same secret.
	q := authParams(r.ID)
	if resp, page := e.browser().get(e.authURL(q)); resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(page, "redirect") {
		t.Fatalf("authorize with the old redirect URI: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	r.RAT = rat2
	status, tok := e.codeFlow(r, newURI)
	if status != 200 || str(tok, "refresh_token") == "" {
		t.Fatalf("code flow after update: %d %v", status, tok)
	}

	// Delete: 204, then the client and everything it holds is refused.
	access, refresh := str(tok, "access_token"), str(tok, "refresh_token")
	if resp, m := e.jsonRequest(http.MethodDelete, r.URI, r.RAT, nil); resp.StatusCode != http.StatusNoContent || m != nil {
		t.Fatalf("delete: %d %v", resp.StatusCode, m)
	}
	if resp, _ := e.jsonRequest(http.MethodGet, r.URI, r.RAT, nil); resp.StatusCode != 401 {
		t.Fatalf("read after delete: %d", resp.StatusCode)
	}
	if resp, _ := e.jsonRequest(http.MethodDelete, r.URI, r.RAT, nil); resp.StatusCode != 401 {
		t.Fatalf("second delete: %d", resp.StatusCode)
	}
	if s, m := e.refresh(refresh, r.ID, r.Secret); s != 401 || m["error"] != "invalid_client" {
		t.Fatalf("refresh after delete: %d %v", s, m)
	}
	if resp, m := e.userinfo(access); resp.StatusCode != 401 || m["error"] != "invalid_token" {
		t.Fatalf("userinfo after delete: %d %v", resp.StatusCode, m)
	}
	for _, token := range []string{access, refresh} {
		if _, m := e.postForm("/introspect", url.Values{"token": {token}}, "rs2", "rs2-secret"); m["active"] != false {
			t.Fatalf("introspection after delete: %v", m)
		}
		if resp, m := e.postForm("/introspect", url.Values{"token": {token}}, r.ID, r.Secret); resp.StatusCode != 401 {
			t.Fatalf("introspection by the deleted client: %d %v", resp.StatusCode, m)
		}
	}
	if resp, _ := e.browser().get(e.authURL(with(authParams(r.ID), "redirect_uri", newURI))); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("authorize for a deleted client: %d", resp.StatusCode)
	}
	reasons := []string{}
	for _, ev := range ab.events(audit.ClientRegistered) {
		reasons = append(reasons, str(ev, "reason"))
	}
	if strings.Join(reasons, ",") != "registered (open),updated,deleted" {
		t.Errorf("audit reasons %v", reasons)
	}
}

func TestUpdateBetweenPublicAndConfidential(t *testing.T) {
	e, _ := regEnv(t, provider.RegistrationOpen)
	r := e.register(map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none"}, "")
	if r.Secret != "" {
		t.Fatal("a public client got a secret")
	}
	resp, m := e.jsonRequest(http.MethodPut, r.URI, r.RAT, map[string]any{"client_id": r.ID, "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_post"})
	secret := str(m, "client_secret")
	if resp.StatusCode != 200 || secret == "" || m["client_secret_expires_at"] != float64(0) {
		t.Fatalf("to confidential: %d %v", resp.StatusCode, m)
	}
	c, _ := e.clients.Get(context.Background(), r.ID)
	if c.Public || !c.CheckSecret(secret) {
		t.Fatalf("stored %+v", c)
	}
	resp, m = e.jsonRequest(http.MethodPut, r.URI, str(m, "registration_access_token"), map[string]any{"client_id": r.ID,
		"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none"})
	if resp.StatusCode != 200 || m["client_secret"] != nil {
		t.Fatalf("back to public: %d %v", resp.StatusCode, m)
	}
	c, _ = e.clients.Get(context.Background(), r.ID)
	if !c.Public || len(c.SecretHash) != 0 || c.CheckSecret(secret) {
		t.Fatalf("the public client kept a secret: %+v", c)
	}
}
