package oidc_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// op is a stand-in OpenID provider for the module's tests: discovery,
// keys, an authorization endpoint that signs in whoever next names at
// once, a token endpoint that checks the code, client and PKCE verifier
// as a provider must, and userinfo. Its tokens are real signed JWTs.
type op struct {
	*httptest.Server
	t      *testing.T
	key    *rsa.PrivateKey
	now    func() time.Time
	client string
	secret string

	mu    sync.Mutex
	next  map[string]any // claims of the next sign-in
	codes map[string]grant
	// lastAuth is the query of the last authorization request.
	lastAuth url.Values
	// tamper changes the next ID token's claims.
	tamper func(map[string]any)
}

type grant struct {
	claims                        map[string]any
	nonce, challenge, redirectURI string
}

func newOP(t *testing.T, now func() time.Time) *op {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &op{t: t, key: key, now: now, client: "gatehouse", secret: "s3cret", codes: map[string]grant{}}
	mux := http.NewServeMux()
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
			"userinfo_endpoint": p.URL + "/userinfo", "jwks_uri": p.URL + "/jwks", "end_session_endpoint": p.URL + "/logout?ui=1",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// signIn makes claims (sub, email, …) the next sign-in.
func (p *op) signIn(claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = claims
}

func (p *op) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.client || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := randomString()
	p.mu.Lock()
	p.lastAuth = q
	p.codes[code] = grant{claims: p.next, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri")}
	p.mu.Unlock()
	sendBack(w, r, code)
}

// sendBack sends the browser of authorization request r back to its
// redirect_uri with code and its state.
func sendBack(w http.ResponseWriter, r *http.Request, code string) {
	q := r.URL.Query()
	back, _ := url.Parse(q.Get("redirect_uri"))
	v := back.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *op) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	p.mu.Lock()
	g, found := p.codes[r.PostFormValue("code")]
	delete(p.codes, r.PostFormValue("code"))
	tamper := p.tamper
	p.tamper = nil
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	switch {
	case id != p.client || secret != p.secret:
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]string{"error": "invalid_client"})
		return
	case !found || g.redirectURI != r.PostFormValue("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "invalid_grant"})
		return
	}
	now := p.now()
	claims := map[string]any{"iss": p.URL, "aud": p.client, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": g.nonce, "auth_time": now.Unix()}
	for k, v := range g.claims {
		if k != "userinfo" {
			claims[k] = v
		}
	}
	if tamper != nil {
		tamper(claims)
	}
	access := "at-" + randomString()
	p.mu.Lock()
	ui, _ := g.claims["userinfo"].(map[string]any)
	if ui == nil {
		ui = map[string]any{}
	}
	if _, has := ui["sub"]; !has {
		ui["sub"] = g.claims["sub"]
	}
	p.codes[access] = grant{claims: ui}
	p.mu.Unlock()
	writeJSON(w, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": p.sign(claims, "JWT")})
}

func (p *op) userinfo(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	g, ok := p.codes[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	p.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeJSON(w, g.claims)
}

// sign signs claims with the provider's key.
func (p *op) sign(claims map[string]any, typ string) string {
	return signWith(p.t, p.key, "k1", claims, typ)
}

func signWith(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any, typ string) string {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// logoutToken is a valid logout token for sub and sid (either may be "").
func (p *op) logoutToken(sub, sid string) map[string]any {
	now := p.now()
	c := map[string]any{"iss": p.URL, "aud": p.client, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": randomString(),
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
	if sub != "" {
		c["sub"] = sub
	}
	if sid != "" {
		c["sid"] = sid
	}
	return c
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
