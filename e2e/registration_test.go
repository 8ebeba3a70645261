package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestDynamicRegistrationEndToEnd: an admin makes an initial access
// token with the CLI; a client registers with it over HTTP, signs a
// person in with x/oauth2 and go-oidc, reads, updates and deletes its
// registration (RFC 7592), and its tokens die with it; npm
// openid-client registers with the same token and uses its secret.
func TestDynamicRegistrationEndToEnd(t *testing.T) {
	idpPort := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", idpPort)
	const redirect = "http://rp.localhost/callback"
	c := startIDP(t, issuer, "\t\tregistration initial_access_token\n")
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--email", "alice@example.com", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out, err := c.cli("", "client", "token", "create", "--ttl", "1h", "--uses", "2")
	m := regexp.MustCompile(`initial_access_token: (\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil || !strings.Contains(out, "good for 2 registration(s) at "+issuer+"/register") {
		t.Fatalf("client token create: %v\n%s", err, out)
	}
	iat := m[1]
	for _, bad := range [][]string{{"--uses", "-3"}, {"--uses", "20000"}, {"--ttl", "-1h"}, {"--ttl", "9000h"}} {
		out, err := c.cli("", append([]string{"client", "token", "create"}, bad...)...)
		if err == nil || strings.Contains(out, "initial_access_token:") || !strings.Contains(out, "initial access token") {
			t.Fatalf("client token create %v: %v\n%s", bad, err, out)
		}
	}

	send := func(method, url, bearer string, body any) (int, map[string]any) {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, url, rd)
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	meta := map[string]any{"redirect_uris": []string{redirect}, "client_name": "Registered RP",
		"grant_types": []string{"authorization_code", "refresh_token"}}
	if st, body := send(http.MethodPost, issuer+"/register", "", meta); st != 401 || body["error"] != "invalid_token" {
		t.Fatalf("registration without a token: %d %v", st, body)
	}
	st, reg := send(http.MethodPost, issuer+"/register", iat, meta)
	if st != 201 {
		t.Fatalf("registration: %d %v", st, reg)
	}
	id, secret, rat, uri := reg["client_id"].(string), reg["client_secret"].(string), reg["registration_access_token"].(string), reg["registration_client_uri"].(string)

	// A code flow with the registered client, by x/oauth2 and go-oidc.
	ctx := oidc.ClientContext(t.Context(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Registration string `json:"registration_endpoint"`
	}
	if err := p.Claims(&disc); err != nil || disc.Registration != issuer+"/register" {
		t.Fatalf("registration_endpoint in discovery: %q %v", disc.Registration, err)
	}
	conf := oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: redirect,
		Scopes: []string{oidc.ScopeOpenID, "email"}}
	s := &idpSetup{caddy: c, issuer: issuer, appHost: "rp.localhost"}
	v := oauth2.GenerateVerifier()
	q := s.authorize(t, newBrowser(t, "rp.localhost"), conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oidc.Nonce("n")),
		"alice", "correct horse battery")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatalf("exchange with the registered client: %v", err)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: id}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Nonce != "n" {
		t.Fatalf("ID token for the registered client: %v", err)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || refreshed.AccessToken == tok.AccessToken {
		t.Fatalf("refresh by the registered client: %v", err)
	}
	out, err = c.cli("", "client", "list")
	if err != nil || !regexp.MustCompile(id+`\s+Registered RP\s+confidential\s+registered \d{4}-\d\d-\d\d\s+`+regexp.QuoteMeta(redirect)).MatchString(out) {
		t.Fatalf("client list does not show the registered client: %v\n%s", err, out)
	}

	// RFC 7592: read, update (the token rotates), delete.
	if st, got := send(http.MethodGet, uri, rat, nil); st != 200 || got["client_name"] != "Registered RP" {
		t.Fatalf("read: %d %v", st, got)
	}
	if st, got := send(http.MethodGet, uri, iat, nil); st != 401 {
		t.Fatalf("read with the initial access token: %d %v", st, got)
	}
	meta["client_id"], meta["client_name"] = id, "Renamed RP"
	st, upd := send(http.MethodPut, uri, rat, meta)
	if st != 200 || upd["client_name"] != "Renamed RP" || upd["registration_access_token"] == rat {
		t.Fatalf("update: %d %v", st, upd)
	}
	rat = upd["registration_access_token"].(string)
	if st, _ := send(http.MethodDelete, uri, rat, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("refresh after delete: %v", err)
	}
	if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(refreshed)); err == nil {
		t.Fatal("userinfo with a deleted client's access token")
	}
	if out, _ := c.cli("", "client", "list"); strings.Contains(out, id) {
		t.Fatalf("deleted client still listed:\n%s", out)
	}

	// openid-client registers with the token's second use.
	needNode(t)
	node := exec.Command("node", "register.mjs", issuer, iat)
	node.Dir = "thirdparty"
	raw, err := node.Output()
	var res struct {
		Registered  map[string]any `json:"registered"`
		TokenType   string         `json:"token_type"`
		AccessToken string         `json:"access_token"`
		Error       string         `json:"error"`
	}
	if jerr := json.Unmarshal(raw, &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("openid-client registration: %v %v %s", err, jerr, raw)
	}
	nodeID, _ := res.Registered["client_id"].(string)
	if nodeID == "" || res.Registered["client_name"] != "openid-client registered" || res.Registered["client_secret"] == "" ||
		strings.ToLower(res.TokenType) != "bearer" || res.AccessToken == "" {
		t.Fatalf("openid-client got %s", raw)
	}
	if out, _ := c.cli("", "client", "list"); !strings.Contains(out, nodeID) {
		t.Fatalf("the client openid-client registered is not listed:\n%s", out)
	}
	// Both uses are spent.
	if st, body := send(http.MethodPost, issuer+"/register", iat, meta); st != 401 {
		t.Fatalf("third registration with a two-use token: %d %v", st, body)
	}
}
