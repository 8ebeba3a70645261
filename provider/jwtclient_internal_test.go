package provider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const fuzzSecret = "fuzz-secret-long-enough-for-hs256-0123456789"

// fuzzJWTProvider is a provider with a private_key_jwt client "pk" (EC
// key) and a client_secret_jwt client "cs", and a signer for pk.
func fuzzJWTProvider(f *testing.F) (*Provider, func(map[string]any) string) {
	p := fuzzProvider(f)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	for _, c := range []Client{
		{ID: "pk", TokenEndpointAuthMethod: AuthPrivateKeyJWT, RedirectURIs: []string{"https://app.example/cb"}, ClientSettings: ClientSettings{JWKS: set}},
		{ID: "cs", Secret: fuzzSecret, TokenEndpointAuthMethod: AuthSecretJWT, RedirectURIs: []string{"https://app.example/cb"}},
	} {
		if err := p.cfg.Clients.SetStatic(c); err != nil {
			f.Fatal(err)
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		f.Fatal(err)
	}
	sign := func(claims map[string]any) string {
		raw, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	return p, sign
}

// FuzzClientAssertion: authenticateAssertion never panics, and whatever
// it accepts is a fresh assertion of the client it names, for us.
func FuzzClientAssertion(f *testing.F) {
	p, sign := fuzzJWTProvider(f)
	now := time.Now()
	claims := func(jti string) map[string]any {
		return map[string]any{"iss": "pk", "sub": "pk", "aud": p.cfg.Issuer, "jti": jti, "exp": now.Add(time.Hour).Unix()}
	}
	f.Add("", sign(claims("seed-1")))
	f.Add("pk", sign(claims("seed-2")))
	f.Add("cs", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJjcyIsInN1YiI6ImNzIn0.")
	f.Add("pk", "a.b.c")
	f.Fuzz(func(t *testing.T, clientID, raw string) {
		form := url.Values{"client_assertion_type": {assertionTypeJWTBearer}, "client_assertion": {raw}}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		r := httptest.NewRequest("POST", "https://idp.example/token", strings.NewReader(form.Encode()))
		client, oerr := p.authenticateAssertion(r, form)
		if oerr != nil {
			if oerr.Code == "" || oerr.status == 0 {
				t.Fatalf("error without code or status: %+v", oerr)
			}
			return
		}
		var c jwt.Claims
		jws, err := jose.ParseSignedCompact(raw, asymmetricAlgs)
		if err != nil || json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil {
			t.Fatalf("accepted an assertion that is not an asymmetric JWS: %q", raw)
		}
		if client.ID != "pk" || c.Subject != "pk" || c.Issuer != "pk" {
			t.Fatalf("accepted %+v for client %s", c, client.ID)
		}
	})
}

// FuzzRequestObject: requestObjectParams never panics; what it accepts
// was signed by the client and yields no nested request.
func FuzzRequestObject(f *testing.F) {
	p, sign := fuzzJWTProvider(f)
	f.Add(sign(map[string]any{"iss": "pk", "aud": p.cfg.Issuer, "client_id": "pk", "response_type": "code", "max_age": 10,
		"claims": map[string]any{"id_token": map[string]any{"acr": nil}}, "acr_values": []string{"1", "2"}}))
	f.Add(sign(map[string]any{"request_uri": "https://x"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJjbGllbnRfaWQiOiJwayJ9.")
	f.Add("a.b.c.d.e")
	client, err := p.cfg.Clients.Get(context.Background(), "pk")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		params, oerr := p.requestObjectParams(context.Background(), client, raw)
		if oerr != nil {
			if oerr.Code != "invalid_request_object" {
				t.Fatalf("error %+v", oerr)
			}
			return
		}
		if _, err := jose.ParseSignedCompact(raw, asymmetricAlgs); err != nil {
			t.Fatalf("accepted %q: %v", raw, err)
		}
		if params.Has("request") || params.Has("request_uri") || params.Has("iss") || params.Has("exp") {
			t.Fatalf("params %v", params)
		}
		if id := params.Get("client_id"); id != "" && id != "pk" {
			t.Fatalf("client_id %q", id)
		}
	})
}

// FuzzClientJWKS: parseClientJWKS never panics and never accepts a
// private or symmetric key.
func FuzzClientJWKS(f *testing.F) {
	f.Add(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	f.Add(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	f.Add(`{"keys":[]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		set, err := parseClientJWKS([]byte(raw))
		if err != nil {
			return
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				t.Fatalf("accepted a non-public key: %s", raw)
			}
		}
	})
}

// TestPushedRequestsCapped: a client cannot keep more than
// maxPushedPerWindow requests pushed per window; others are not affected,
// and the next window starts afresh.
func TestPushedRequestsCapped(t *testing.T) {
	p := fuzzProvider(t)
	ctx := context.Background()
	now := time.Now().Truncate(parTTL)
	p.tokens.now = func() time.Time { return now }
	for i := range maxPushedPerWindow {
		if _, err := p.tokens.push(ctx, pushedRequest{ClientID: "spa"}, parTTL); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	if _, err := p.tokens.push(ctx, pushedRequest{ClientID: "spa"}, parTTL); !errors.Is(err, errTooManyPushed) {
		t.Fatalf("push over the cap: %v", err)
	}
	if _, err := p.tokens.push(ctx, pushedRequest{ClientID: "conf"}, parTTL); err != nil {
		t.Fatalf("another client: %v", err)
	}
	now = now.Add(parTTL)
	if _, err := p.tokens.push(ctx, pushedRequest{ClientID: "spa"}, parTTL); err != nil {
		t.Fatalf("next window: %v", err)
	}
}
