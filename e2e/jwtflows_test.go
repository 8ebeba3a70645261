package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

const jwtFlowSecret = "hmac-client-secret-long-enough-for-hs256-42"

// TestThirdPartyJWTFlows has openid-client (npm) authenticate with
// private_key_jwt (keys at a jwks_uri) and client_secret_jwt, push its
// authorization requests (PAR), and sign them (JAR, and JAR inside PAR),
// against a real Caddy; the Go test plays the browser and signs in.
func TestThirdPartyJWTFlows(t *testing.T) {
	needNode(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv := jose.JSONWebKey{Key: key, KeyID: "rp-key-1", Algorithm: "ES256", Use: "sig"}
	pub := priv.Public()
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	privJSON, _ := json.Marshal(priv)
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(jwks)
	}))
	t.Cleanup(jwksSrv.Close)

	issuer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	const redirect = "http://rp.localhost/callback"
	c := startIDP(t, issuer, fmt.Sprintf(`		client keyed {
			token_endpoint_auth_method private_key_jwt
			jwks_uri %[2]s/jwks.json
			request_object_signing_alg ES256
			redirect_uri %[3]s
			first_party
		}
		client hmac {
			secret %[4]s
			token_endpoint_auth_method client_secret_jwt
			require_pushed_authorization_requests
			redirect_uri %[3]s
			first_party
		}
`, issuer, jwksSrv.URL, redirect, jwtFlowSecret))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	s := &idpSetup{caddy: c, issuer: issuer, appHost: "rp.localhost"}

	for _, tc := range []struct{ client, method, credential, flow string }{
		{"keyed", "private_key_jwt", string(privJSON), "par"},
		{"keyed", "private_key_jwt", string(privJSON), "jar"},
		{"keyed", "private_key_jwt", string(privJSON), "jar+par"},
		{"hmac", "client_secret_jwt", jwtFlowSecret, "par"},
	} {
		t.Run(tc.client+" "+tc.flow, func(t *testing.T) {
			rp := startNodeRP(t, "jwtflows.mjs", issuer, tc.client, tc.method, tc.credential, tc.flow, redirect)
			first := rp.next()
			authURL, _ := first["url"].(string)
			if authURL == "" {
				t.Fatalf("openid-client: %v", first)
			}
			u, _ := url.Parse(authURL)
			switch q := u.Query(); {
			case strings.Contains(tc.flow, "par") && !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:"):
				t.Fatalf("not a pushed request: %s", authURL)
			case tc.flow == "jar" && q.Get("request") == "":
				t.Fatalf("no request object: %s", authURL)
			}
			b := newBrowser(t, "rp.localhost")
			cb := s.authorize(t, b, authURL, "alice", "correct horse battery")
			if cb.Get("code") == "" {
				t.Fatalf("no code: %v", cb)
			}
			rp.send(redirect + "?" + cb.Encode())
			res := rp.next()
			if res["ok"] != true || res["sub"] == "" || res["aud"] != tc.client || res["active"] != true || res["introspected_client"] != tc.client ||
				res["scope"] != "openid profile email" {
				t.Fatalf("openid-client: %v", res)
			}
			if tc.flow != "jar" {
				// The request_uri is spent.
				resp, page := newBrowser(t, "rp.localhost").get(authURL)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already used") {
					t.Fatalf("reused request_uri: %d\n%s", resp.StatusCode, page)
				}
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		// PAR without client authentication.
		resp, err := http.PostForm(issuer+"/par", url.Values{"client_id": {"keyed"}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {redirect}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "invalid_client") {
			t.Fatalf("PAR without authentication: %d %s", resp.StatusCode, body)
		}
		// hmac must push its requests.
		b := newBrowser(t, "rp.localhost")
		resp, page := b.get(issuer + "/authorize?" + url.Values{"client_id": {"hmac"}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {redirect}, "code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}}.Encode())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("unpushed request of a PAR-only client: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
		}
		// The secret itself is no credential for a client_secret_jwt client.
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("hmac", jwtFlowSecret)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("basic auth of a client_secret_jwt client: %d", resp.StatusCode)
		}
	})
}
