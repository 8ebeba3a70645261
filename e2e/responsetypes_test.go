package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestEveryResponseTypeThroughCaddy asks a real Caddy for each response
// type the client is allowed and checks what comes back with go-oidc:
// the ID token's signature, nonce, at_hash and c_hash, and that the
// access token works at userinfo.
func TestEveryResponseTypeThroughCaddy(t *testing.T) {
	issuer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	const redirect = "http://rp.localhost/cb"
	c := startIDP(t, issuer, fmt.Sprintf(`		client rp {
			first_party
			secret rp-secret
			redirect_uri %s
			response_types code id_token "id_token token" "code id_token" "code token" "code id_token token" none
		}
`, redirect))
	if out, err := c.cli("correct horse battery\n", "user", "add", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: loopbackTransport()})
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	verifier := p.Verifier(&oidc.Config{ClientID: "rp"})
	b := newBrowser(t, "rp.localhost")
	half := func(v string) string {
		sum := sha256.Sum256([]byte(v))
		return base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	signedIn := false
	for _, rt := range []string{"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "none"} {
		t.Run(rt, func(t *testing.T) {
			nonce := "n-" + strings.ReplaceAll(rt, " ", "-")
			q := url.Values{"client_id": {"rp"}, "response_type": {rt}, "scope": {"openid"}, "redirect_uri": {redirect},
				"state": {"st"}, "nonce": {nonce}}
			resp, page := b.get(issuer + "/authorize?" + q.Encode())
			if !signedIn {
				resp, page = b.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery")
				signedIn = true
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), redirect) {
				t.Fatalf("%d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
			}
			v := loc.Query()
			if rt != "code" && rt != "none" {
				if loc.RawQuery != "" {
					t.Fatalf("tokens in the query: %s", loc)
				}
				v, _ = url.ParseQuery(loc.Fragment)
			}
			if v.Get("state") != "st" || v.Get("iss") != issuer || v.Get("error") != "" {
				t.Fatalf("response %v", v)
			}
			for _, part := range []string{"code", "id_token", "token"} {
				key := map[string]string{"code": "code", "id_token": "id_token", "token": "access_token"}[part]
				if strings.Contains(" "+rt+" ", " "+part+" ") != (v.Get(key) != "") {
					t.Fatalf("%s: %s present = %v", rt, key, v.Get(key) != "")
				}
			}
			if raw := v.Get("id_token"); raw != "" {
				idt, err := verifier.Verify(ctx, raw)
				if err != nil || idt.Nonce != nonce {
					t.Fatalf("ID token: %v (nonce %q)", err, idt.Nonce)
				}
				var claims struct {
					AtHash string `json:"at_hash"`
					CHash  string `json:"c_hash"`
				}
				idt.Claims(&claims)
				if at := v.Get("access_token"); at != "" && (claims.AtHash != half(at) || idt.VerifyAccessToken(at) != nil) {
					t.Errorf("at_hash %q", claims.AtHash)
				}
				if code := v.Get("code"); code != "" && claims.CHash != half(code) {
					t.Errorf("c_hash %q", claims.CHash)
				}
			}
			if at := v.Get("access_token"); at != "" {
				if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: at, TokenType: "Bearer"})); err != nil {
					t.Errorf("userinfo with the front-channel access token: %v", err)
				}
			}
		})
	}
}
