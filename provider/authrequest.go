package provider

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on authorization request input. Real requests are far smaller;
// anything beyond is an attack or a bug and gets a clear error. The
// request travels sealed through the login pages' URLs, so these bounds
// also bound those URLs.
const (
	maxQueryBytes = 16 << 10
	maxParamBytes = 2048
	authReqTTL    = 30 * time.Minute
	keyCode       = "code:"
	keyAuthDone   = "authreq-done:"
	// codeRecordTTL keeps a redeemed code's record after it stops being
	// redeemable, so a replay is recognised and its tokens revoked.
	codeRecordTTL  = 10 * time.Minute
	purposeAuthReq = "authorize"
)

// paramLimits are tighter bounds for parameters that are echoed or kept.
var paramLimits = map[string]int{
	"state": 2048, "nonce": 512, "login_hint": 256, "ui_locales": 64, "acr_values": 256,
	"scope": 1024, "prompt": 64, "max_age": 10, "response_type": 64, "response_mode": 32,
	"code_challenge": 128, "code_challenge_method": 16, "display": 16, "id_token_hint": 8192,
	"claims": 4096,
}

// pkceChallenge is the form of an S256 challenge and of a verifier
// (RFC 7636 §4.1, §4.2): 43 to 128 unreserved characters.
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

// Response modes (OAuth 2.0 Multiple Response Type Encoding Practices
// §2.1, OAuth 2.0 Form Post Response Mode).
const (
	modeQuery    = "query"
	modeFragment = "fragment"
	modeFormPost = "form_post"
)

// requiredSuffix marks a scope the person cannot untick on the consent
// page ("email~r").
const requiredSuffix = "~r"

// authRequest is a validated authorization request. It is not stored:
// while the browser walks the chain it travels sealed (encrypted,
// authenticated, bound to the browser, expiring) in the return URL.
type authRequest struct {
	// ID makes the request single use once it comes back from the chain.
	ID          string `json:"id"`
	Browser     string `json:"browser"`
	ClientID    string `json:"client_id"`
	RedirectURI string `json:"redirect_uri"`
	// ResponseType is normalised (values sorted); ResponseMode is the
	// one in force (the default filled in).
	ResponseType string   `json:"response_type"`
	ResponseMode string   `json:"response_mode"`
	Scopes       []string `json:"scopes"`
	// Required are the scopes marked ~r: the consent page cannot drop them.
	Required  []string       `json:"required,omitempty"`
	State     string         `json:"state,omitempty"`
	Nonce     string         `json:"nonce,omitempty"`
	Challenge string         `json:"code_challenge,omitempty"`
	AcrValues []string       `json:"acr_values,omitempty"`
	MaxAge    *time.Duration `json:"max_age,omitempty"`
	Prompt    []string       `json:"prompt,omitempty"`
	LoginHint string         `json:"login_hint,omitempty"`
	UILocales string         `json:"ui_locales,omitempty"`
	// Claims is the claims parameter (OIDC Core §5.5).
	Claims *claimsRequest `json:"claims,omitempty"`
	// EssentialACR: the claims parameter asked for acr as essential; a
	// login that does not reach a requested level is then an error.
	EssentialACR bool      `json:"essential_acr,omitempty"`
	StartedAt    time.Time `json:"started_at"`
}

func (a *authRequest) prompt(v string) bool { return slices.Contains(a.Prompt, v) }

// since is the earliest time a passed module counts for this request:
// max_age before the request began, or its start for a forced login.
func (a *authRequest) since() time.Time {
	switch {
	case a.forceLogin():
		return a.StartedAt
	case a.MaxAge != nil:
		return a.StartedAt.Add(-*a.MaxAge)
	}
	return time.Time{}
}

// forceLogin: the user must authenticate again now (prompt=login,
// max_age=0).
func (a *authRequest) forceLogin() bool {
	return a.prompt("login") || (a.MaxAge != nil && *a.MaxAge == 0)
}

// target is where the authorization response goes and how.
type target struct {
	RedirectURI, State, Mode string
}

func (a *authRequest) target() target {
	return target{RedirectURI: a.RedirectURI, State: a.State, Mode: a.ResponseMode}
}

// responseModeOf works out the response mode of a request from its raw
// response_type and response_mode, so that even an error about the rest
// of the request travels the way the client expects. A request that
// asks for tokens in the query gets the fragment (and an error).
func responseModeOf(params url.Values) string {
	rt := parseResponseType(strings.Join(strings.Fields(params.Get("response_type")), " "))
	switch m := params.Get("response_mode"); {
	case m == modeFormPost || m == modeFragment:
		return m
	case m == modeQuery && !rt.frontChannelTokens():
		return modeQuery
	case rt.frontChannelTokens():
		return modeFragment
	}
	return modeQuery
}

// parseAuthRequest validates everything but client_id and redirect_uri.
func (p *Provider) parseAuthRequest(params url.Values, client *Client) (*authRequest, *oauthError) {
	for k, vs := range params {
		if len(vs) > 1 {
			return nil, errInvalidRequest("parameter " + k + " is repeated")
		}
		limit, ok := paramLimits[k]
		if !ok {
			limit = maxParamBytes
		}
		if len(vs[0]) > limit {
			return nil, errInvalidRequest("parameter " + k + " is too long (at most " + strconv.Itoa(limit) + " bytes)")
		}
	}
	req := &authRequest{
		State:     params.Get("state"),
		Nonce:     params.Get("nonce"),
		LoginHint: params.Get("login_hint"),
		UILocales: params.Get("ui_locales"),
		AcrValues: strings.Fields(params.Get("acr_values")),
	}
	if oerr := p.parseResponse(params, client, req); oerr != nil {
		return nil, oerr
	}
	if oerr := p.parseScopes(params, client, req); oerr != nil {
		return nil, oerr
	}
	if oerr := parsePKCE(params, client, req); oerr != nil {
		return nil, oerr
	}
	if raw := params.Get("claims"); raw != "" {
		c, err := parseClaimsRequest(raw)
		if err != nil {
			return nil, errInvalidRequest("claims: " + err.Error())
		}
		values, essential := c.acr()
		for _, v := range values {
			if !slices.Contains(req.AcrValues, v) {
				req.AcrValues = append(req.AcrValues, v)
			}
		}
		req.EssentialACR = essential
		// Only claims some scope of the client could release are kept.
		allowed := p.allowedScopes(client)
		req.Claims = c.keep(slices.DeleteFunc(c.userClaims(), func(name string) bool { return !p.scopes.releasable(allowed, name) }))
	}
	if oerr := parsePrompt(params, req); oerr != nil {
		return nil, oerr
	}
	// The client's registered defaults (OIDC Dynamic Client Registration
	// §2) stand in for what the request leaves out. auth_time is in
	// every ID token, so require_auth_time needs nothing.
	if req.MaxAge == nil && client.DefaultMaxAge > 0 {
		d := time.Duration(client.DefaultMaxAge) * time.Second
		req.MaxAge = &d
	}
	if len(req.AcrValues) == 0 {
		req.AcrValues = slices.Clone(client.DefaultACRValues)
	}
	return req, nil
}

// parseResponse checks response_type (supported, allowed for the
// client), response_mode and the nonce the implicit and hybrid flows
// require.
func (p *Provider) parseResponse(params url.Values, client *Client, req *authRequest) *oauthError {
	raw := params.Get("response_type")
	if raw == "" {
		return errInvalidRequest("response_type is required")
	}
	norm, ok := normalResponseType(raw)
	if !ok {
		return &oauthError{Code: "unsupported_response_type", Description: "response_type " + strconv.Quote(raw) + " is not supported"}
	}
	allowed := slices.ContainsFunc(client.AllowedResponseTypes(), func(rt string) bool { n, _ := normalResponseType(rt); return n == norm })
	if !allowed {
		return &oauthError{Code: "unauthorized_client", Description: "this client may not use response_type " + strconv.Quote(raw)}
	}
	req.ResponseType = norm
	rt := parseResponseType(norm)
	switch m := params.Get("response_mode"); m {
	case "", modeQuery, modeFragment, modeFormPost:
		if m == modeQuery && rt.frontChannelTokens() {
			return errInvalidRequest("tokens are never sent in the query: use response_mode fragment or form_post")
		}
	default:
		return errInvalidRequest("unsupported response_mode " + strconv.Quote(m))
	}
	req.ResponseMode = responseModeOf(params)
	if rt.frontChannelTokens() && req.Nonce == "" {
		return errInvalidRequest("nonce is required when tokens come back from the authorization endpoint")
	}
	return nil
}

// parseScopes reads scope: openid required, ~r marks a scope required,
// scopes the client may not have are dropped (RFC 6749 §3.3), and
// offline_access only counts when a code is issued (OIDC Core §11).
func (p *Provider) parseScopes(params url.Values, client *Client, req *authRequest) *oauthError {
	allowed := p.allowedScopes(client)
	withCode := parseResponseType(req.ResponseType).code
	for _, raw := range strings.Fields(params.Get("scope")) {
		s, required := strings.CutSuffix(raw, requiredSuffix)
		if s == "openid" || slices.Contains(allowed, s) && (s != "offline_access" || withCode) {
			if !slices.Contains(req.Scopes, s) {
				req.Scopes = append(req.Scopes, s)
			}
			if required && s != "openid" && !slices.Contains(req.Required, s) {
				req.Required = append(req.Required, s)
			}
		}
	}
	if !slices.Contains(req.Scopes, "openid") {
		return &oauthError{Code: "invalid_scope", Description: "the openid scope is required"}
	}
	return nil
}

// parsePKCE checks code_challenge (RFC 7636; S256 only, required for
// public clients that get a code).
func parsePKCE(params url.Values, client *Client, req *authRequest) *oauthError {
	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	withCode := parseResponseType(req.ResponseType).code
	switch {
	case challenge == "" && method != "":
		return errInvalidRequest("code_challenge_method without code_challenge")
	case challenge == "" && client.Public && withCode:
		return errInvalidRequest("PKCE is required for public clients: send code_challenge with code_challenge_method=S256")
	case challenge != "" && method == "plain":
		return errInvalidRequest("code_challenge_method plain is not allowed; use S256")
	case challenge != "" && method != "S256":
		return errInvalidRequest("code_challenge_method must be S256")
	case challenge != "" && !pkceChallenge.MatchString(challenge):
		return errInvalidRequest("code_challenge is malformed")
	}
	req.Challenge = challenge
	return nil
}

// parsePrompt reads prompt and max_age.
func parsePrompt(params url.Values, req *authRequest) *oauthError {
	for _, v := range strings.Fields(params.Get("prompt")) {
		switch v {
		case "none", "login", "consent", "select_account":
			if !slices.Contains(req.Prompt, v) {
				req.Prompt = append(req.Prompt, v)
			}
		default:
			return errInvalidRequest("unsupported prompt value " + strconv.Quote(v))
		}
	}
	if req.prompt("none") && len(req.Prompt) > 1 {
		return errInvalidRequest("prompt=none cannot be combined with other values")
	}
	if ma := params.Get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 32)
		if err != nil || n < 0 {
			return errInvalidRequest("max_age must be a non-negative number of seconds")
		}
		d := time.Duration(n) * time.Second
		req.MaxAge = &d
	}
	if req.prompt("none") && req.forceLogin() {
		return &oauthError{Code: "login_required", Description: "max_age=0 requires a fresh sign-in"}
	}
	return nil
}

// single returns the one value of a parameter; repeating it is an error.
func single(v url.Values, key string) (string, error) {
	switch vs := v[key]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", errors.New(key + " is repeated")
	}
}
