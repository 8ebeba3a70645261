package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// setReceiver is an RFC 8935 endpoint: it keeps each SET as posted and
// answers 202 Accepted.
type setReceiver struct {
	mu   sync.Mutex
	raw  []string
	auth []string
}

func (rc *setReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/secevent+jwt" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"err":"invalid_request","description":"not a SET"}`)
		return
	}
	rc.mu.Lock()
	rc.raw = append(rc.raw, string(body))
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	rc.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// waitFor waits until n SETs arrived and returns them.
func (rc *setReceiver) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		got := append([]string(nil), rc.raw...)
		rc.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d SETs did not arrive", n)
	return nil
}

// TestSecurityEventTokens: with a receiver configured, creating a user,
// signing in, signing out and `caddy gatehouse user disable` each push a
// SET that verifies against the issuer's published JWKS, with typ
// secevent+jwt, our issuer, the receiver's audience and a fresh jti.
// A SET is no ID token: the logout endpoint refuses it as a hint.
func TestSecurityEventTokens(t *testing.T) {
	rc := &setReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	t.Setenv("GATEHOUSE_E2E_SET_TOKEN", "hr-secret") // the authorization header, from the environment
	s := newIDP(t, fmt.Sprintf("events {\n\t\t\treceiver %s/sets {\n\t\t\t\taudience https://hr.example\n\t\t\t\tauthorization \"Bearer {env.GATEHOUSE_E2E_SET_TOKEN}\"\n\t\t\t\tprivate_networks\n\t\t\t}\n\t\t}", srv.URL))
	s.addUser(t, "alice", "correct horse battery")
	rp := s.client(t)
	b := newBrowser(t, s.appHost)
	verifier := oauth2.GenerateVerifier()
	q := s.authorize(t, b, rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", "correct horse battery")
	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, _ := tok.Extra("id_token").(string)
	rc.waitFor(t, 2) // account created, signed in

	// A SET is refused where an ID token is expected.
	set := rc.waitFor(t, 2)[1]
	if resp, _ := b.get(s.issuer + "/logout?" + url.Values{"id_token_hint": {set}}.Encode()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a SET was taken as id_token_hint: %d", resp.StatusCode)
	}
	// Sign out at the provider, tied to the session by the ID token.
	resp, page := b.get(s.issuer + "/logout?" + url.Values{"id_token_hint": {idt}}.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(page), "signed out") {
		t.Fatalf("logout: %d\n%s", resp.StatusCode, page)
	}
	rc.waitFor(t, 3)
	// Signed in again, then disabled: the session ends with the account,
	// in one transaction.
	s.authorize(t, newBrowser(t, s.appHost), rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", "correct horse battery")
	rc.waitFor(t, 4)
	if out, err := s.caddy.cli("", "user", "disable", "alice"); err != nil {
		t.Fatalf("user disable: %v\n%s", err, out)
	}
	raw := rc.waitFor(t, 6)

	// Verify every SET against the JWKS the issuer publishes.
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, s.issuer+"/.well-known/openid-configuration", &disc)
	var jwks jose.JSONWebKeySet
	getJSON(t, disc.JWKSURI, &jwks)
	jtis := map[string]bool{}
	var types []string
	var subjects []map[string]any
	var txns []string
	for _, r := range raw {
		parsed, err := jwt.ParseSigned(r, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		if typ := parsed.Headers[0].ExtraHeaders[jose.HeaderType]; typ != "secevent+jwt" {
			t.Fatalf("typ %v", typ)
		}
		var c struct {
			jwt.Claims
			SubID  map[string]any            `json:"sub_id"`
			Txn    string                    `json:"txn"`
			Events map[string]map[string]any `json:"events"`
		}
		if err := parsed.Claims(jwks, &c); err != nil {
			t.Fatalf("a SET does not verify against the issuer's JWKS: %v", err)
		}
		if err := c.Validate(jwt.Expected{Issuer: s.issuer, AnyAudience: jwt.Audience{"https://hr.example"}}); err != nil {
			t.Fatalf("claims: %v", err)
		}
		if c.ID == "" || jtis[c.ID] || c.IssuedAt == nil || c.Subject != "" || c.Expiry != nil || len(c.Events) != 1 {
			t.Fatalf("SET claims: %+v", c)
		}
		jtis[c.ID] = true
		for typ := range c.Events {
			types = append(types, typ[strings.LastIndex(typ, "/")+1:])
		}
		subjects = append(subjects, c.SubID)
		txns = append(txns, c.Txn)
	}
	if want := "account-created session-established session-revoked session-established session-revoked account-disabled"; strings.Join(types, " ") != want {
		t.Fatalf("event types %v, want %s", types, want)
	}
	if txns[4] == "" || txns[4] != txns[5] || txns[2] != "" || txns[0] == txns[4] {
		t.Fatalf("txn claims %q: want the disable and its session's end in one transaction", txns)
	}
	alias, _ := json.Marshal(subjects[5])
	if !strings.Contains(string(alias), `"format":"aliases"`) || !strings.Contains(string(alias), `"email":"alice@example.com"`) {
		t.Fatalf("account subject %s", alias)
	}
	if subjects[1]["format"] != "complex" || subjects[1]["session"] == nil {
		t.Fatalf("session subject %v", subjects[1])
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, a := range rc.auth {
		if a != "Bearer hr-secret" {
			t.Fatalf("authorization %q", a)
		}
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := (&http.Client{Transport: loopbackTransport()}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
}
