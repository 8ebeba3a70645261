package provider_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// csjSecret keys the client_secret_jwt client's HMAC (at least 32 bytes).
const csjSecret = "a-client-secret-long-enough-for-hs256-0123"

// clientKey is a client's private signing key.
type clientKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any
}

func newRSAKey(t testing.TB, kid string) clientKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{kid, jose.RS256, k}
}

func newECKey(t testing.TB, kid string) clientKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{kid, jose.ES256, k}
}

func (k clientKey) public() jose.JSONWebKey {
	pub := jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
	return pub.Public()
}

// jwksOf is the public JWK set of keys.
func jwksOf(t testing.TB, keys ...clientKey) []byte {
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signJWT signs claims with key under alg, with extra header fields.
func signJWT(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any, header map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	for k, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (k clientKey) sign(t testing.TB, claims map[string]any) string {
	return signJWT(t, k.alg, k.key, k.kid, claims, nil)
}

// unsigned is a JWT with alg none.
func unsigned(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertion are valid client assertion claims for client.
func (e *env) assertion(client string) map[string]any {
	now := e.clock.Now()
	return map[string]any{"iss": client, "sub": client, "aud": e.issuer + "/token", "jti": randomID(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
}

func with2(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// assertionForm is form authenticated by the client assertion raw.
func assertionForm(form url.Values, raw string) url.Values {
	out := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {raw}}
	for k, v := range form {
		out[k] = v
	}
	return out
}

func cc() url.Values { return url.Values{"grant_type": {"client_credentials"}} }

// jwtClients are the env's clients that authenticate with JWTs.
type jwtClients struct {
	rsa, ec, other clientKey
	jwks           *jwksServer
}

// jwksServer serves a JWK set that tests can change, counting fetches.
type jwksServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int32
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		b := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(b)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) set(b []byte) { s.mu.Lock(); s.body = b; s.mu.Unlock() }

// addJWTClients registers:
//   - pkj: private_key_jwt with an inline JWK set (RSA r1, EC e1); it also
//     has a secret, which it must not use;
//   - pkjes: private_key_jwt, ES256 only;
//   - pkjuri: private_key_jwt with keys at a jwks_uri (EC u1);
//   - csj: client_secret_jwt.
func addJWTClients(t testing.TB, e *env) *jwtClients {
	jc := &jwtClients{rsa: newRSAKey(t, "r1"), ec: newECKey(t, "e1"), other: newECKey(t, "u1")}
	jc.jwks = newJWKSServer(t, jwksOf(t, jc.other))
	grants := []string{provider.GrantAuthorizationCode, provider.GrantClientCredentials}
	for _, c := range []provider.Client{
		{ID: "pkj", Secret: "pkj-secret", TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{FirstParty: true, GrantTypes: grants, JWKS: jwksOf(t, jc.rsa, jc.ec)}},
		{ID: "pkjes", TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{FirstParty: true, GrantTypes: grants, JWKS: jwksOf(t, jc.rsa, jc.ec), TokenEndpointAuthSigningAlg: "ES256"}},
		{ID: "pkjuri", TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{FirstParty: true, GrantTypes: grants, JWKSURI: jc.jwks.srv.URL + "/jwks.json"}},
		{ID: "csj", Secret: csjSecret, TokenEndpointAuthMethod: provider.AuthSecretJWT, RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{FirstParty: true, GrantTypes: grants}},
	} {
		if err := e.clients.SetStatic(c); err != nil {
			t.Fatal(err)
		}
	}
	return jc
}

// auditLog gives the env an audit log and returns it.
func withAudit(l **audit.Log) func(*provider.Config) {
	return func(c *provider.Config) {
		*l = audit.New(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		c.Audit = *l
	}
}

func TestClientAssertions(t *testing.T) {
	var log *audit.Log
	e := newEnv(t, "", withAudit(&log))
	jc := addJWTClients(t, e)
	pem := publicPEM(t, jc.rsa)
	pubJWK, _ := json.Marshal(jc.rsa.public())

	cases := []struct {
		name   string
		form   func() url.Values
		basic  [2]string
		status int
		err    string
		why    string // in error_description
	}{
		{"private_key_jwt RS256", func() url.Values { return assertionForm(cc(), jc.rsa.sign(t, e.assertion("pkj"))) }, [2]string{}, 200, "", ""},
		{"private_key_jwt ES256", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, e.assertion("pkj"))) }, [2]string{}, 200, "", ""},
		{"aud is the issuer", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "aud", e.issuer)))
		}, [2]string{}, 200, "", ""},
		{"aud list with the token endpoint", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "aud", []string{"https://x.example", e.issuer + "/token"})))
		}, [2]string{}, 200, "", ""},
		{"client_id in the form too", func() url.Values {
			return assertionForm(with(cc(), "client_id", "pkj"), jc.ec.sign(t, e.assertion("pkj")))
		}, [2]string{}, 200, "", ""},
		{"client_secret_jwt HS256", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS256, []byte(csjSecret), "", e.assertion("csj"), nil))
		}, [2]string{}, 200, "", ""},
		{"client_secret_jwt HS512 needs a longer secret", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS512, []byte(csjSecret+csjSecret), "", e.assertion("csj"), nil))
		}, [2]string{}, 401, "invalid_client", "signature does not verify"},

		{"wrong aud", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "aud", "https://other.example/token")))
		}, [2]string{}, 401, "invalid_client", "aud must be"},
		{"aud is the userinfo endpoint", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "aud", e.issuer+"/userinfo")))
		}, [2]string{}, 401, "invalid_client", "aud must be"},
		{"no aud", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "aud", nil))) }, [2]string{}, 401, "invalid_client", "aud must be"},
		{"expired", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "exp", e.clock.Now().Add(-time.Minute).Unix())))
		}, [2]string{}, 401, "invalid_client", "expired"},
		{"no exp", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "exp", nil))) }, [2]string{}, 401, "invalid_client", "exp is required"},
		{"exp an hour ahead", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "exp", e.clock.Now().Add(time.Hour).Unix())))
		}, [2]string{}, 401, "invalid_client", "too far ahead"},
		{"nbf in the future", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "nbf", e.clock.Now().Add(2*time.Minute).Unix())))
		}, [2]string{}, 401, "invalid_client", "nbf"},
		{"iat in the future", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "iat", e.clock.Now().Add(2*time.Minute).Unix())))
		}, [2]string{}, 401, "invalid_client", "iat"},
		{"no jti", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "jti", nil))) }, [2]string{}, 401, "invalid_client", "jti is required"},
		{"oversized jti", func() url.Values {
			return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "jti", strings.Repeat("j", 300))))
		}, [2]string{}, 401, "invalid_client", "jti is required"},
		{"alg none", func() url.Values { return assertionForm(cc(), unsigned(e.assertion("pkj"))) }, [2]string{}, 401, "invalid_client", "alg none"},
		{"HS256 keyed with the public key PEM", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS256, pem, "r1", e.assertion("pkj"), nil))
		}, [2]string{}, 401, "invalid_client", "must authenticate with private_key_jwt"},
		{"HS256 keyed with the public JWK", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS256, pubJWK, "r1", e.assertion("pkj"), nil))
		}, [2]string{}, 401, "invalid_client", "must authenticate with private_key_jwt"},
		{"iss is not sub", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, with2(e.assertion("pkj"), "iss", "csj"))) }, [2]string{}, 401, "invalid_client", "iss and sub"},
		{"unknown kid", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.ES256, jc.ec.key, "nope", e.assertion("pkj"), nil))
		}, [2]string{}, 401, "invalid_client", "kid"},
		{"key of another client", func() url.Values { return assertionForm(cc(), jc.other.sign(t, e.assertion("pkj"))) }, [2]string{}, 401, "invalid_client", "kid"},
		{"assertion of another client", func() url.Values {
			return assertionForm(with(cc(), "client_id", "csj"), jc.ec.sign(t, e.assertion("pkj")))
		}, [2]string{}, 401, "invalid_client", "iss and sub"},
		{"private_key_jwt client with its secret", func() url.Values { return cc() }, [2]string{"pkj", "pkj-secret"}, 401, "invalid_client", "must authenticate with private_key_jwt"},
		{"private_key_jwt client with HS256 of its secret", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS256, []byte("pkj-secret-padded-to-thirty-two-bytes"), "", e.assertion("pkj"), nil))
		}, [2]string{}, 401, "invalid_client", "must authenticate with private_key_jwt"},
		{"client_secret_jwt client with a key", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, e.assertion("csj"))) }, [2]string{}, 401, "invalid_client", "must authenticate with client_secret_jwt"},
		{"client_secret_jwt client with basic", func() url.Values { return cc() }, [2]string{"csj", csjSecret}, 401, "invalid_client", "must authenticate with client_secret_jwt"},
		{"client_secret_jwt wrong secret", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS256, []byte(csjSecret+"x"), "", e.assertion("csj"), nil))
		}, [2]string{}, 401, "invalid_client", "signature does not verify"},
		{"registered alg ES256, RS256 sent", func() url.Values { return assertionForm(cc(), jc.rsa.sign(t, e.assertion("pkjes"))) }, [2]string{}, 401, "invalid_client", "RS256 is not allowed"},
		{"registered alg ES256 sent", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, e.assertion("pkjes"))) }, [2]string{}, 200, "", ""},
		{"request object typ", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.ES256, jc.ec.key, "e1", e.assertion("pkj"), map[string]any{"typ": "oauth-authz-req+jwt"}))
		}, [2]string{}, 401, "invalid_client", "request object"},
		{"public client", func() url.Values {
			return assertionForm(cc(), signJWT(t, jose.HS256, []byte(csjSecret), "", e.assertion("spa"), nil))
		}, [2]string{}, 401, "invalid_client", "public client"},
		{"unknown client", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, e.assertion("ghost"))) }, [2]string{}, 401, "invalid_client", "unknown client"},
		{"wrong assertion type", func() url.Values {
			f := assertionForm(cc(), jc.ec.sign(t, e.assertion("pkj")))
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return f
		}, [2]string{}, 401, "invalid_client", "client_assertion_type"},
		{"type without assertion", func() url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
		}, [2]string{}, 400, "invalid_request", "client_assertion is missing"},
		{"assertion and basic", func() url.Values { return assertionForm(cc(), jc.ec.sign(t, e.assertion("pkj"))) }, [2]string{"pkj", "pkj-secret"}, 400, "invalid_request", "one client authentication method"},
		{"assertion and client_secret", func() url.Values {
			return assertionForm(with(cc(), "client_secret", "pkj-secret"), jc.ec.sign(t, e.assertion("pkj")))
		}, [2]string{}, 400, "invalid_request", "one client authentication method"},
		{"garbage", func() url.Values { return assertionForm(with(cc(), "client_id", "pkj"), "not.a.jwt") }, [2]string{}, 401, "invalid_client", "supported algorithm"},
		{"oversized", func() url.Values { return assertionForm(with(cc(), "client_id", "pkj"), strings.Repeat("a", 9000)) }, [2]string{}, 401, "invalid_client", "too large"},
		{"encrypted", func() url.Values { return assertionForm(with(cc(), "client_id", "pkj"), "a.b.c.d.e") }, [2]string{}, 401, "invalid_client", "encrypted"},
		{"no client at all", func() url.Values { return assertionForm(cc(), "x.y.z") }, [2]string{}, 401, "invalid_client", "client authentication is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.token(tc.form(), tc.basic[0], tc.basic[1])
			desc, _ := body["error_description"].(string)
			if resp.StatusCode != tc.status || body["error"] != nil && body["error"] != tc.err || !strings.Contains(desc, tc.why) {
				t.Fatalf("status %d %v, want %d %s (%s)", resp.StatusCode, body, tc.status, tc.err, tc.why)
			}
			if tc.status == 200 && body["access_token"] == nil {
				t.Fatalf("no access token: %v", body)
			}
		})
	}
	if log.Counts()[audit.TokenMisuse] < 2 || log.Counts()[audit.BadClientSecret] < 10 {
		t.Fatalf("refusals not audited: %v", log.Counts())
	}

	t.Run("replayed jti", func(t *testing.T) {
		before := log.Counts()[audit.TokenMisuse]
		raw := jc.ec.sign(t, e.assertion("pkj"))
		if resp, body := e.token(assertionForm(cc(), raw), "", ""); resp.StatusCode != 200 {
			t.Fatalf("first use: %d %v", resp.StatusCode, body)
		}
		resp, body := e.token(assertionForm(cc(), raw), "", "")
		if resp.StatusCode != 401 || body["error"] != "invalid_client" || !strings.Contains(body["error_description"].(string), "replayed") {
			t.Fatalf("replay: %d %v", resp.StatusCode, body)
		}
		if log.Counts()[audit.TokenMisuse] != before+1 {
			t.Fatal("replay not audited as token misuse")
		}
		// The same jti at another endpoint is a replay too.
		resp, _ = e.postForm("/introspect", assertionForm(url.Values{"token": {"x"}}, raw), "", "")
		if resp.StatusCode != 401 {
			t.Fatalf("replay at introspection: %d", resp.StatusCode)
		}
	})
	t.Run("concurrent replays: one wins", func(t *testing.T) {
		raw := jc.ec.sign(t, e.assertion("pkj"))
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, _ := e.token(assertionForm(cc(), raw), "", ""); resp.StatusCode == 200 {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d of 8 concurrent uses accepted", ok.Load())
		}
	})
	t.Run("a jti of another client is not a replay", func(t *testing.T) {
		jti := randomID()
		for _, c := range []struct {
			id  string
			key clientKey
		}{{"pkj", jc.ec}, {"pkjes", jc.ec}} {
			if resp, body := e.token(assertionForm(cc(), c.key.sign(t, with2(e.assertion(c.id), "jti", jti))), "", ""); resp.StatusCode != 200 {
				t.Fatalf("%s: %d %v", c.id, resp.StatusCode, body)
			}
		}
	})
	t.Run("expired once the clock moves", func(t *testing.T) {
		raw := jc.ec.sign(t, e.assertion("pkj"))
		e.clock.Advance(2 * time.Minute)
		if resp, _ := e.token(assertionForm(cc(), raw), "", ""); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("introspection and revocation take assertions for their own URL", func(t *testing.T) {
		_, tok := e.token(assertionForm(cc(), jc.ec.sign(t, e.assertion("pkj"))), "", "")
		at := tok["access_token"].(string)
		resp, body := e.postForm("/introspect", assertionForm(url.Values{"token": {at}},
			jc.ec.sign(t, with2(e.assertion("pkj"), "aud", e.issuer+"/introspect"))), "", "")
		if resp.StatusCode != 200 || body["active"] != true {
			t.Fatalf("introspect: %d %v", resp.StatusCode, body)
		}
		resp, body = e.postForm("/introspect", assertionForm(url.Values{"token": {at}},
			jc.ec.sign(t, with2(e.assertion("pkj"), "aud", e.issuer+"/revoke"))), "", "")
		if resp.StatusCode != 401 {
			t.Fatalf("introspect with the revocation endpoint's aud: %d %v", resp.StatusCode, body)
		}
		resp, body = e.postForm("/revoke", assertionForm(url.Values{"token": {at}},
			jc.ec.sign(t, with2(e.assertion("pkj"), "aud", e.issuer+"/revoke"))), "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("revoke: %d %v", resp.StatusCode, body)
		}
		if _, body := e.postForm("/introspect", assertionForm(url.Values{"token": {at}}, jc.ec.sign(t, e.assertion("pkj"))), "", ""); body["active"] != false {
			t.Fatalf("revoked token still active: %v", body)
		}
	})
}

func publicPEM(t testing.TB, k clientKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(&k.key.(*rsa.PrivateKey).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestClientAssertionJWKSURI: keys at a jwks_uri are fetched once and
// cached, fetched again for an unknown kid (a rotation), but not more
// often than every few seconds.
func TestClientAssertionJWKSURI(t *testing.T) {
	e := newEnv(t, "")
	jc := addJWTClients(t, e)
	ok := func(k clientKey) int {
		resp, _ := e.token(assertionForm(cc(), k.sign(t, e.assertion("pkjuri"))), "", "")
		return resp.StatusCode
	}
	if s := ok(jc.other); s != 200 {
		t.Fatalf("first: %d", s)
	}
	if s := ok(jc.other); s != 200 || jc.jwks.fetches.Load() != 1 {
		t.Fatalf("second: %d, %d fetches", s, jc.jwks.fetches.Load())
	}
	// An unknown kid: one refetch (at most one fetch per 10 s), then
	// none for a while.
	e.clock.Advance(11 * time.Second)
	rotated := newECKey(t, "u2")
	if s := ok(rotated); s != 401 || jc.jwks.fetches.Load() != 2 {
		t.Fatalf("unknown kid: %d, %d fetches", s, jc.jwks.fetches.Load())
	}
	for range 5 {
		ok(newECKey(t, "u"+randomID()))
	}
	if n := jc.jwks.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches for a burst of unknown kids", n)
	}
	// The client rotates: after the refetch interval the new key works.
	jc.jwks.set(jwksOf(t, jc.other, rotated))
	e.clock.Advance(15 * time.Second)
	if s := ok(rotated); s != 200 || jc.jwks.fetches.Load() != 3 {
		t.Fatalf("rotated key: %d, %d fetches", s, jc.jwks.fetches.Load())
	}
	// A key set with a private key in it is refused.
	priv := jose.JSONWebKey{Key: jc.other.key, KeyID: "u1", Algorithm: "ES256"}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{priv}})
	jc.jwks.set(b)
	e.clock.Advance(10 * time.Minute)
	if s := ok(jc.other); s != 401 {
		t.Fatalf("key set with a private key: %d", s)
	}
	// The server gone: refused, not a crash.
	jc.jwks.srv.Close()
	e.clock.Advance(10 * time.Minute)
	if s := ok(jc.other); s != 401 {
		t.Fatalf("jwks_uri down: %d", s)
	}
}

// TestClientSecretJWTStoredClient: a client registered at run time for
// client_secret_jwt keeps its secret (only it), and loses it when deleted.
func TestClientSecretJWTStoredClient(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	c := provider.Client{ID: "dyn", TokenEndpointAuthMethod: provider.AuthSecretJWT,
		ClientSettings: provider.ClientSettings{GrantTypes: []string{provider.GrantClientCredentials}}}
	if err := e.clients.Add(ctx, c, "short"); err == nil {
		t.Fatal("a secret too short for HS256 was accepted")
	}
	if err := e.clients.Add(ctx, c, csjSecret); err != nil {
		t.Fatal(err)
	}
	stored, err := e.st.Get(ctx, "client:dyn")
	if err != nil || bytes.Contains(stored, []byte(csjSecret)) {
		t.Fatalf("the client record holds the secret: %s %v", stored, err)
	}
	sign := func(secret string) int {
		resp, _ := e.token(assertionForm(cc(), signJWT(t, jose.HS256, []byte(secret), "", e.assertion("dyn"), nil)), "", "")
		return resp.StatusCode
	}
	if s := sign(csjSecret); s != 200 {
		t.Fatalf("stored client_secret_jwt client: %d", s)
	}
	if s := sign(strings.ToUpper(csjSecret)); s != 401 {
		t.Fatalf("wrong secret: %d", s)
	}
	if err := e.clients.Delete(ctx, "dyn"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Get(ctx, "client-hmac:dyn"); err == nil {
		t.Fatal("the secret outlived its client")
	}
	// A client with a plain secret method keeps only the hash.
	if err := e.clients.Add(ctx, provider.Client{ID: "dyn2", ClientSettings: provider.ClientSettings{GrantTypes: []string{provider.GrantClientCredentials}}}, csjSecret); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Get(ctx, "client-hmac:dyn2"); err == nil {
		t.Fatal("a client_secret_basic client's secret was kept")
	}
}

// TestClientAssertionRegulated: bad assertions count like bad secrets;
// a banned client is refused even with a good assertion.
func TestClientAssertionRegulated(t *testing.T) {
	var lim *regulate.Limiter
	e := newEnv(t, "", func(c *provider.Config) {
		var err error
		lim, err = regulate.New(c.Store, regulate.Policy{regulate.KindClient: {MaxRetries: 3, FindTime: time.Hour, BanTime: time.Hour, MaxBanTime: time.Hour}}, c.Sessions.Now)
		if err != nil {
			t.Fatal(err)
		}
		c.Regulate = lim
	})
	jc := addJWTClients(t, e)
	for range 3 {
		resp, _ := e.token(assertionForm(cc(), jc.other.sign(t, e.assertion("pkj"))), "", "")
		if resp.StatusCode != 401 {
			t.Fatalf("bad assertion: %d", resp.StatusCode)
		}
	}
	resp, body := e.token(assertionForm(cc(), jc.ec.sign(t, e.assertion("pkj"))), "", "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("banned client: %d %v", resp.StatusCode, body)
	}
	// Other clients are not affected.
	if resp, _ := e.token(assertionForm(cc(), signJWT(t, jose.HS256, []byte(csjSecret), "", e.assertion("csj"), nil)), "", ""); resp.StatusCode != 200 {
		t.Fatalf("other client: %d", resp.StatusCode)
	}
}

// TestClientKeySettingsValidate: the registration rules.
func TestClientKeySettingsValidate(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t, "r"), newECKey(t, "e")
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ecKey.key, KeyID: "e", Algorithm: "ES256"}}})
	sym, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte(csjSecret), KeyID: "s", Algorithm: "HS256"}}})
	good := jwksOf(t, rsaKey, ecKey)
	base := func(f func(*provider.Client)) provider.Client {
		c := provider.Client{ID: "c", RedirectURIs: []string{redirectURI}, TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT,
			ClientSettings: provider.ClientSettings{JWKS: good}}
		f(&c)
		return c
	}
	cases := []struct {
		name string
		c    provider.Client
		ok   bool
	}{
		{"private_key_jwt with jwks", base(func(*provider.Client) {}), true},
		{"private_key_jwt with jwks_uri", base(func(c *provider.Client) { c.JWKS = nil; c.JWKSURI = "https://rp.example/jwks" }), true},
		{"loopback http jwks_uri", base(func(c *provider.Client) { c.JWKS = nil; c.JWKSURI = "http://127.0.0.1:9/jwks" }), true},
		{"private_key_jwt without keys", base(func(c *provider.Client) { c.JWKS = nil }), false},
		{"jwks and jwks_uri", base(func(c *provider.Client) { c.JWKSURI = "https://rp.example/jwks" }), false},
		{"http jwks_uri", base(func(c *provider.Client) { c.JWKS = nil; c.JWKSURI = "http://rp.example/jwks" }), false},
		{"jwks_uri with user info", base(func(c *provider.Client) { c.JWKS = nil; c.JWKSURI = "https://u:p@rp.example/jwks" }), false},
		{"private key in jwks", base(func(c *provider.Client) { c.JWKS = priv }), false},
		{"symmetric key in jwks", base(func(c *provider.Client) { c.JWKS = sym }), false},
		{"jwks not JSON", base(func(c *provider.Client) { c.JWKS = []byte(`{"keys":`) }), false},
		{"empty jwks", base(func(c *provider.Client) { c.JWKS = []byte(`{"keys":[]}`) }), false},
		{"public private_key_jwt", base(func(c *provider.Client) { c.Public = true }), false},
		{"HS256 signing alg for private_key_jwt", base(func(c *provider.Client) { c.TokenEndpointAuthSigningAlg = "HS256" }), false},
		{"unknown signing alg", base(func(c *provider.Client) { c.TokenEndpointAuthSigningAlg = "RS1" }), false},
		{"none signing alg", base(func(c *provider.Client) { c.TokenEndpointAuthSigningAlg = "none" }), false},
		{"client_secret_jwt", base(func(c *provider.Client) { c.TokenEndpointAuthMethod = provider.AuthSecretJWT; c.Secret = csjSecret }), true},
		{"client_secret_jwt short secret", base(func(c *provider.Client) { c.TokenEndpointAuthMethod = provider.AuthSecretJWT; c.Secret = "short" }), false},
		{"client_secret_jwt no secret", base(func(c *provider.Client) { c.TokenEndpointAuthMethod = provider.AuthSecretJWT }), false},
		{"client_secret_jwt with RS256", base(func(c *provider.Client) {
			c.TokenEndpointAuthMethod = provider.AuthSecretJWT
			c.Secret = csjSecret
			c.TokenEndpointAuthSigningAlg = "RS256"
		}), false},
		{"request object alg none", base(func(c *provider.Client) { c.RequestObjectSigningAlg = "none" }), false},
		{"request object RS256 without keys", provider.Client{ID: "c", Secret: "s", RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{RequestObjectSigningAlg: "RS256"}}, false},
		{"request object HS256 for a public client", provider.Client{ID: "c", Public: true, RedirectURIs: []string{redirectURI},
			ClientSettings: provider.ClientSettings{RequestObjectSigningAlg: "HS256"}}, false},
		{"request_uris https with fragment", base(func(c *provider.Client) { c.RequestURIs = []string{"https://rp.example/req#abc"} }), true},
		{"request_uris http", base(func(c *provider.Client) { c.RequestURIs = []string{"http://rp.example/req"} }), false},
		{"request_uris relative", base(func(c *provider.Client) { c.RequestURIs = []string{"/req"} }), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
