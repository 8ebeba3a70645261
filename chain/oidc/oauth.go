package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/web"
)

// OAuthSettings are the settings of a provider without OpenID Connect
// (github, x, facebook): OAuth 2 with PKCE, the profile read from the
// provider's API. Its endpoints have the provider's defaults and may
// be overridden (GitHub Enterprise Server).
type OAuthSettings struct {
	// ClientID and ClientSecret are what the provider registered (its
	// callback: <issuer origin><login path>/m/<name>/callback).
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes asked for; default the provider's for a profile and a
	// verified address.
	Scopes []string `json:"scopes,omitempty"`
	// AuthURL, TokenURL and APIURL override the provider's endpoints.
	AuthURL  string `json:"auth_url,omitempty"`
	TokenURL string `json:"token_url,omitempty"`
	APIURL   string `json:"api_url,omitempty"`
	// Accounts, AllowedDomains, Label: as for oidc.
	Accounts string `json:"accounts,omitempty"`
	// UsernamePrefix: as for oidc; default the provider's ("github-",
	// "x-", "facebook-"): names there are anyone's choice.
	UsernamePrefix *string  `json:"username_prefix,omitempty"`
	AllowedDomains []string `json:"allowed_domains,omitempty"`
	Label          string   `json:"label,omitempty"`
	// TrustEmail (facebook): its API does not say whether an address
	// is verified; only with this set does it count as verified.
	TrustEmail bool `json:"trust_email,omitempty"`
}

// oauthProvider is what differs between OAuth 2 providers.
type oauthProvider struct {
	label, mark               string
	authURL, tokenURL, apiURL string
	scopes                    []string
	authStyle                 oauth2.AuthStyle
	// profile reads the signed-in person's claims (sub,
	// preferred_username, name, email, email_verified) from the API.
	profile func(ctx context.Context, m *oauthModule, tok *oauth2.Token) (map[string]any, error)
}

func (s *OAuthSettings) check(p oauthProvider) error {
	if s.ClientID == "" {
		return errors.New("client_id is required")
	}
	if err := checkAccounts(s.Accounts); err != nil {
		return err
	}
	for name, u := range map[string]*string{"auth_url": &s.AuthURL, "token_url": &s.TokenURL, "api_url": &s.APIURL} {
		def := map[string]string{"auth_url": p.authURL, "token_url": p.tokenURL, "api_url": p.apiURL}[name]
		if *u == "" {
			*u = def
		}
		if err := checkIssuer(*u); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(s.Scopes) == 0 {
		s.Scopes = p.scopes
	}
	if s.Label == "" {
		s.Label = p.label
	}
	if s.UsernamePrefix == nil {
		def := p.mark + "-"
		s.UsernamePrefix = &def
	}
	if err := checkPrefix(*s.UsernamePrefix); err != nil {
		return err
	}
	_, err := parseDomains(s.AllowedDomains)
	return err
}

// oauthModule is one instance of an OAuth 2 preset.
type oauthModule struct {
	linked
	d       chain.Deps
	s       OAuthSettings
	p       oauthProvider
	issuer  string
	levels  []string
	domains domainList
	create  bool
}

func newOAuth(d chain.Deps, s OAuthSettings, p oauthProvider) (chain.Module, error) {
	m := &oauthModule{d: d, s: s, p: p}
	m.domains, _ = parseDomains(s.AllowedDomains)
	u, _ := url.Parse(s.AuthURL)
	// The identities' issuer: the provider's origin (a GitHub Enterprise
	// server's identities are not github.com's).
	m.issuer = u.Scheme + "://" + u.Host
	m.linked = linked{d: d, label: s.Label, issuer: m.issuer}
	m.levels, m.create = place(d, s.Accounts)
	if len(m.levels) != 1 {
		return nil, fmt.Errorf("module %q grants %d levels: an OAuth 2 provider says nothing of how the person signed in, so it grants one", d.Name, len(m.levels))
	}
	return m, nil
}

// Brand is the provider's name and mark on the chooser.
func (m *oauthModule) Brand() (string, string) { return m.s.Label, m.p.mark }

func (m *oauthModule) config(callback string) *oauth2.Config {
	return &oauth2.Config{ClientID: m.s.ClientID, ClientSecret: m.s.ClientSecret, RedirectURL: callback, Scopes: m.s.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: m.s.AuthURL, TokenURL: m.s.TokenURL, AuthStyle: m.p.authStyle}}
}

func (m *oauthModule) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: web.Sprintf("Sign in with %s", m.s.Label), Submit: web.Sprintf("Continue with %s", m.s.Label), Step: chain.StepRedirect}, nil
}

// Redirect sends the browser to the provider, with a PKCE challenge.
func (m *oauthModule) Redirect(_ context.Context, _ *chain.Attempt, state, callback string) (string, []byte, error) {
	verifier := oauth2.GenerateVerifier()
	return m.config(callback).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), []byte(verifier), nil
}

// Callback exchanges the code and reads the profile.
func (m *oauthModule) Callback(ctx context.Context, _ *chain.Attempt, r *http.Request, kept []byte) (chain.Identity, error) {
	if e := r.Form.Get("error"); e != "" {
		return chain.Identity{}, chain.Reject(fmt.Sprintf("%s did not sign you in (%.64s).", m.s.Label, e))
	}
	code := r.Form.Get("code")
	if code == "" || len(code) > 4096 || len(kept) == 0 {
		return chain.Identity{}, chain.Reject(m.s.Label + " sent no sign-in code.")
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, m.d.HTTP)
	tok, err := m.config(m.d.CallbackURL).Exchange(ctx, code, oauth2.VerifierOption(string(kept)))
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return chain.Identity{}, chain.Reject(m.s.Label + " did not accept the sign-in (" + re.ErrorCode + ").")
	} else if err != nil {
		return chain.Identity{}, fmt.Errorf("%s module %q: token request: %w", m.s.Label, m.d.Name, err)
	}
	raw, err := m.p.profile(ctx, m, tok)
	if err != nil {
		return chain.Identity{}, err
	}
	mp := mapping{username: "preferred_username", email: "email", name: "name", verified: "email_verified", trustEmail: m.s.TrustEmail}
	if m.s.UsernamePrefix != nil {
		mp.prefix = *m.s.UsernamePrefix
	}
	c, err := mp.claims(m.issuer, raw)
	if err != nil {
		m.d.Logger.Warn("oauth: profile refused", "error", err)
		return chain.Identity{}, chain.Reject(m.s.Label + " sent a profile that cannot be used.")
	}
	if !m.domains.empty() && (!c.EmailVerified || !m.domains.admits(c.Email)) {
		return chain.Identity{}, chain.Reject("Your account at " + m.s.Label + " may not sign in here (its address is not at an allowed domain).")
	}
	c.Create = m.create
	return chain.Identity{Unlinked: &c, Levels: m.levels}, nil
}

// maxAPIBody bounds what is read from a provider's API.
const maxAPIBody = 1 << 20

// getJSON reads path of the provider's API as JSON into v.
func (m *oauthModule) getJSON(ctx context.Context, tok *oauth2.Token, path string, header http.Header, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(m.s.APIURL, "/")+path, nil)
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := m.d.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s API %s: %w", m.s.Label, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s API %s: status %d", m.s.Label, path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIBody)).Decode(v); err != nil {
		return fmt.Errorf("%s API %s: %w", m.s.Label, path, err)
	}
	return nil
}

var (
	_ chain.RedirectModule = (*oauthModule)(nil)
	_ chain.AccountModule  = (*oauthModule)(nil)
	_ chain.Branded        = (*oauthModule)(nil)
)
