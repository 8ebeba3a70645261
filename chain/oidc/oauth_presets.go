package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/chain"
)

// GitHubSettings are for GitHub (an OAuth App or a GitHub App's user
// sign-in). The address is the primary one when GitHub has verified it
// (else none). For GitHub Enterprise Server set auth_url
// (https://ghe.example/login/oauth/authorize), token_url
// (https://ghe.example/login/oauth/access_token) and api_url
// (https://ghe.example/api/v3).
type GitHubSettings OAuthSettings

// XSettings are for X (OAuth 2.0 with PKCE; a confidential client of
// type "Web App"). X gives no address.
type XSettings OAuthSettings

// FacebookSettings are for Facebook Login. Its API does not say whether
// an address is verified: it counts as verified only with trust_email.
type FacebookSettings OAuthSettings

var github = oauthProvider{
	label: "GitHub", mark: "github", authURL: "https://github.com/login/oauth/authorize", tokenURL: "https://github.com/login/oauth/access_token",
	apiURL: "https://api.github.com", scopes: []string{"read:user", "user:email"}, authStyle: oauth2.AuthStyleInParams,
	profile: func(ctx context.Context, m *oauthModule, tok *oauth2.Token) (map[string]any, error) {
		h := http.Header{"Accept": {"application/vnd.github+json"}, "X-Github-Api-Version": {"2022-11-28"}}
		var u struct {
			ID    json.Number `json:"id"`
			Login string      `json:"login"`
			Name  string      `json:"name"`
		}
		if err := m.getJSON(ctx, tok, "/user", h, &u); err != nil {
			return nil, err
		}
		var emails []struct {
			Email    string `json:"email"`
			Primary  bool   `json:"primary"`
			Verified bool   `json:"verified"`
		}
		if err := m.getJSON(ctx, tok, "/user/emails", h, &emails); err != nil {
			return nil, err
		}
		c := map[string]any{"sub": u.ID.String(), "preferred_username": u.Login, "name": u.Name}
		for _, e := range emails {
			if e.Primary && e.Verified {
				c["email"], c["email_verified"] = e.Email, true
			}
		}
		return c, nil
	},
}

var xcom = oauthProvider{
	label: "X", mark: "x", authURL: "https://x.com/i/oauth2/authorize", tokenURL: "https://api.x.com/2/oauth2/token",
	apiURL: "https://api.x.com", scopes: []string{"users.read", "tweet.read"}, authStyle: oauth2.AuthStyleInHeader,
	profile: func(ctx context.Context, m *oauthModule, tok *oauth2.Token) (map[string]any, error) {
		var me struct {
			Data struct {
				ID       string `json:"id"`
				Name     string `json:"name"`
				Username string `json:"username"`
			} `json:"data"`
		}
		if err := m.getJSON(ctx, tok, "/2/users/me", nil, &me); err != nil {
			return nil, err
		}
		return map[string]any{"sub": me.Data.ID, "preferred_username": me.Data.Username, "name": me.Data.Name}, nil
	},
}

var facebook = oauthProvider{
	label: "Facebook", mark: "facebook", authURL: "https://www.facebook.com/v21.0/dialog/oauth", tokenURL: "https://graph.facebook.com/v21.0/oauth/access_token",
	apiURL: "https://graph.facebook.com/v21.0", scopes: []string{"public_profile", "email"}, authStyle: oauth2.AuthStyleInParams,
	profile: func(ctx context.Context, m *oauthModule, tok *oauth2.Token) (map[string]any, error) {
		// appsecret_proof: a token taken elsewhere is no use without the
		// app's secret (Graph API, "Securing requests").
		mac := hmac.New(sha256.New, []byte(m.s.ClientSecret))
		mac.Write([]byte(tok.AccessToken))
		q := url.Values{"fields": {"id,name,email"}, "appsecret_proof": {hex.EncodeToString(mac.Sum(nil))}}
		var me struct {
			ID    string `json:"id"`
			Name  string `json:"name"`
			Email string `json:"email"`
		}
		if err := m.getJSON(ctx, tok, "/me?"+q.Encode(), nil, &me); err != nil {
			return nil, err
		}
		return map[string]any{"sub": me.ID, "name": me.Name, "email": me.Email}, nil
	},
}

// Validate applies GitHub's defaults and checks the settings.
func (s *GitHubSettings) Validate() error { return (*OAuthSettings)(s).check(github) }

// Validate applies X's defaults and checks the settings.
func (s *XSettings) Validate() error { return (*OAuthSettings)(s).check(xcom) }

// Validate applies Facebook's defaults and checks the settings.
func (s *FacebookSettings) Validate() error { return (*OAuthSettings)(s).check(facebook) }

func init() {
	chain.Register("github", func(d chain.Deps, s GitHubSettings) (chain.Module, error) {
		return newOAuth(d, OAuthSettings(s), github)
	})
	chain.Register("x", func(d chain.Deps, s XSettings) (chain.Module, error) { return newOAuth(d, OAuthSettings(s), xcom) })
	chain.Register("facebook", func(d chain.Deps, s FacebookSettings) (chain.Module, error) {
		return newOAuth(d, OAuthSettings(s), facebook)
	})
}
