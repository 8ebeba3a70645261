package gate

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fakeIdP is a minimal OpenID provider whose token endpoint returns an ID
// token built by mint, so tests can send broken tokens to the gate.
type fakeIdP struct {
	srv  *httptest.Server
	key  *rsa.PrivateKey
	mint func(nonce string) map[string]any
	// lastNonce is the nonce of the last authorization request.
	lastNonce string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	f := &fakeIdP{key: key}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/authorize", "token_endpoint": f.srv.URL + "/token",
			"jwks_uri": f.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
			"end_session_endpoint": f.srv.URL + "/logout",
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f.lastNonce = q.Get("nonce")
		http.Redirect(w, r, q.Get("redirect_uri")+"?code=c1&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
		raw, _ := jwt.Signed(signer).Claims(f.mint(f.lastNonce)).Serialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": raw, "expires_in": 60})
	})
	return f
}

func TestCallbackRejectsBadIDTokens(t *testing.T) {
	f := newFakeIdP(t)
	good := func(nonce string) map[string]any {
		now := time.Now()
		return map[string]any{"iss": f.srv.URL, "aud": "gate", "sub": "u1", "nonce": nonce, "iat": now.Unix(),
			"exp": now.Add(time.Minute).Unix(), "preferred_username": "alice", "acr": "1"}
	}
	cases := []struct {
		name   string
		change func(map[string]any)
		ok     bool
	}{
		{"valid", func(map[string]any) {}, true},
		{"wrong audience", func(c map[string]any) { c["aud"] = "other-client" }, false},
		{"wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example" }, false},
		{"wrong nonce", func(c map[string]any) { c["nonce"] = "replayed" }, false},
		{"no nonce", func(c map[string]any) { delete(c, "nonce") }, false},
		{"expired", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.mint = func(nonce string) map[string]any { c := good(nonce); tc.change(c); return c }
			var g *Gate
			site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if s, handled := g.Check(w, r); !handled {
					w.Write([]byte("upstream for " + s.Username))
				}
			}))
			defer site.Close()
			g = newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate", ClientSecret: "s"}, Site{Origins: []string{site.URL}})
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			req, _ := http.NewRequest(http.MethodGet, site.URL+"/page", nil)
			req.Header.Set("Accept", "text/html")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body strings.Builder
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			body.Write(buf[:n])
			resp.Body.Close()
			passed := resp.StatusCode == 200 && body.String() == "upstream for alice"
			if passed != tc.ok {
				t.Fatalf("status %d body %q, want pass=%v", resp.StatusCode, body.String(), tc.ok)
			}
			if !tc.ok && resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502 page", resp.StatusCode)
			}
		})
	}
}

func TestBackchannelEndpoint(t *testing.T) {
	f := newFakeIdP(t)
	var g *Gate
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.Check(w, r) }))
	defer site.Close()
	g = newTestGate(t, nil, Config{Issuer: f.srv.URL, ClientID: "gate", ClientSecret: "s"}, Site{Origins: []string{site.URL}})
	ctx := context.Background()
	for _, s := range []*Session{{ID: "g1", SID: "sid-1", Subject: "u1"}, {ID: "g2", SID: "sid-2", Subject: "u1"}, {ID: "g3", SID: "sid-3", Subject: "u2"}} {
		s.Expires = time.Now().Add(time.Hour)
		if err := g.save(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: f.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	token := func(change func(map[string]any)) string {
		c := map[string]any{"iss": f.srv.URL, "aud": "gate", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
			"jti": randomString(8), "sid": "sid-1", "sub": "u1",
			"events": map[string]any{backchannelEvent: map[string]any{}}}
		change(c)
		raw, _ := jwt.Signed(signer).Claims(c).Serialize()
		return raw
	}
	send := func(tok string) int {
		resp, err := http.PostForm(site.URL+PathBackchannel, url.Values{"logout_token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	exists := func(id string) bool { s, _ := g.load(ctx, id); return s != nil }

	bad := map[string]string{
		"nonce":        token(func(c map[string]any) { c["nonce"] = "n" }),
		"no events":    token(func(c map[string]any) { delete(c, "events") }),
		"wrong event":  token(func(c map[string]any) { c["events"] = map[string]any{"other": map[string]any{}} }),
		"no sid/sub":   token(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") }),
		"wrong aud":    token(func(c map[string]any) { c["aud"] = "other" }),
		"wrong issuer": token(func(c map[string]any) { c["iss"] = "https://evil.example" }),
		"expired":      token(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no jti":       token(func(c map[string]any) { delete(c, "jti") }),
		"garbage":      "not-a-jwt",
	}
	for name, tok := range bad {
		if st := send(tok); st != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, st)
		}
	}
	if !exists("g1") {
		t.Fatal("a refused token ended a session")
	}
	good := token(func(map[string]any) {})
	if st := send(good); st != http.StatusOK {
		t.Fatalf("good token: %d", st)
	}
	if exists("g1") || !exists("g2") || !exists("g3") {
		t.Fatal("sid logout ended the wrong sessions")
	}
	if st := send(good); st != http.StatusBadRequest {
		t.Fatalf("replayed token: %d", st)
	}
	// sub only: every session of that user.
	if st := send(token(func(c map[string]any) { delete(c, "sid") })); st != http.StatusOK {
		t.Fatalf("sub token: %d", st)
	}
	if exists("g2") || !exists("g3") {
		t.Fatal("sub logout ended the wrong sessions")
	}
}
