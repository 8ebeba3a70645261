package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gatehouse-idp/gatehouse/internal/netguard"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// clientMetadata is a client's registration metadata under the names of
// RFC 7591 §2 and OIDC Dynamic Client Registration §2: the body of a
// registration or update request, and (as registered, defaults filled
// in) of the answers. ClientSettings is embedded so that every setting
// it has is registrable and checked by Client.Validate.
type clientMetadata struct {
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	// Scope is the space-separated list of scopes the client may ask
	// for; empty means every scope.
	Scope                  string   `json:"scope,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	FrontchannelLogoutURI  string   `json:"frontchannel_logout_uri,omitempty"`
	ClientSettings
}

// Bounds of a registration request (an unauthenticated client can send
// one under the open policy).
const (
	maxRegistrationBytes = 64 << 10
	maxMetadataString    = 2048 // any string (URIs included)
	maxMetadataList      = 32   // any list
	maxMetadataDepth     = 8    // nesting (jwks is the deepest: 3)
	maxNameLength        = 200  // client_name, software_id, ...
	maxSectorBytes       = 64 << 10
	sectorFetchTimeout   = 5 * time.Second
)

// Metadata errors (RFC 7591 §3.2.2).
func errRedirectURI(format string, args ...any) *oauthError {
	return &oauthError{Code: "invalid_redirect_uri", Description: fmt.Sprintf(format, args...), status: http.StatusBadRequest}
}

func errMetadata(format string, args ...any) *oauthError {
	return &oauthError{Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...), status: http.StatusBadRequest}
}

// readMetadataBody reads a registration or update request's JSON body,
// bounded.
func readMetadataBody(w http.ResponseWriter, r *http.Request) ([]byte, *oauthError) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, &oauthError{Code: "invalid_request", Description: "the body must be application/json", status: http.StatusUnsupportedMediaType}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errMetadata("the registration is larger than %d KiB", maxRegistrationBytes>>10)
	} else if err != nil {
		return nil, &oauthError{Code: "invalid_request", Description: "the body could not be read", status: http.StatusBadRequest}
	}
	return body, nil
}

// parseMetadata decodes a JSON object of client metadata. Fields it does
// not know are ignored (RFC 7591 §2); strings, lists and nesting are
// bounded whatever the field.
func parseMetadata(body []byte) (*clientMetadata, map[string]json.RawMessage, *oauthError) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, nil, errMetadata("the body must be a JSON object")
	}
	for k, v := range raw {
		if oerr := boundedJSON(k, v); oerr != nil {
			return nil, nil, oerr
		}
	}
	if raw["jwks"] != nil && raw["jwks_uri"] != nil && string(raw["jwks"]) != "null" && string(raw["jwks_uri"]) != "null" {
		return nil, nil, errMetadata("jwks and jwks_uri must not both be given")
	}
	var m clientMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, nil, errMetadata("%s must be a JSON %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return nil, nil, errMetadata("the metadata could not be read: %v", err)
	}
	return &m, raw, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "array"
	case "int", "int64", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	}
	return goKind
}

// boundedJSON checks the size of one metadata value: its strings, lists
// and nesting.
func boundedJSON(field string, v json.RawMessage) *oauthError {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return errMetadata("%s could not be read", field)
	}
	var walk func(x any, depth int) *oauthError
	walk = func(x any, depth int) *oauthError {
		if depth > maxMetadataDepth {
			return errMetadata("%s is nested too deeply", field)
		}
		switch t := x.(type) {
		case string:
			if len(t) > maxMetadataString {
				return errMetadata("%s is longer than %d characters", field, maxMetadataString)
			}
		case []any:
			if len(t) > maxMetadataList {
				return errMetadata("%s has more than %d entries", field, maxMetadataList)
			}
			for _, e := range t {
				if oerr := walk(e, depth+1); oerr != nil {
					return oerr
				}
			}
		case map[string]any:
			if len(t) > maxMetadataList {
				return errMetadata("%s has more than %d members", field, maxMetadataList)
			}
			for _, e := range t {
				if oerr := walk(e, depth+1); oerr != nil {
					return oerr
				}
			}
		}
		return nil
	}
	return walk(x, 0)
}

// Application types (OIDC Dynamic Client Registration §2).
const (
	AppWeb    = "web"
	AppNative = "native"
)

// registeredClient turns registration metadata into a client: defaults
// filled in, every value checked as RFC 7591 §2 and OIDC Dynamic Client
// Registration §2 say. The caller sets the id, the secret and the
// registration marks, then Validate has the last word.
func (p *Provider) registeredClient(ctx context.Context, m *clientMetadata) (Client, *oauthError) {
	s := m.ClientSettings
	// Nobody makes itself first party (no consent) or a resource server
	// (introspects everyone's tokens) by registering: admins do that.
	s.FirstParty, s.ResourceServer = false, false
	if s.ApplicationType == "" {
		s.ApplicationType = AppWeb
	}
	if s.ApplicationType != AppWeb && s.ApplicationType != AppNative {
		return Client{}, errMetadata("application_type must be web or native")
	}
	if oerr := defaultGrants(&s); oerr != nil {
		return Client{}, oerr
	}
	implicit := slices.Contains(s.GrantTypes, "implicit")
	if len(m.RedirectURIs) == 0 && (implicit || slices.Contains(s.GrantTypes, GrantAuthorizationCode)) {
		return Client{}, errRedirectURI("redirect_uris is required for the authorization_code and implicit grants")
	}
	for _, u := range m.RedirectURIs {
		if err := checkClientURI(u, s.ApplicationType, implicit); err != nil {
			return Client{}, errRedirectURI("redirect URI %q: %v", u, err)
		}
	}
	for _, u := range m.PostLogoutRedirectURIs {
		if err := checkClientURI(u, s.ApplicationType, false); err != nil {
			return Client{}, errMetadata("post_logout_redirect_uris: %q: %v", u, err)
		}
	}
	for field, u := range map[string]string{"backchannel_logout_uri": m.BackchannelLogoutURI, "frontchannel_logout_uri": m.FrontchannelLogoutURI,
		"logo_uri": s.LogoURI, "client_uri": s.ClientURI, "policy_uri": s.PolicyURI, "tos_uri": s.TOSURI} {
		if u == "" {
			continue
		}
		if err := checkWebURI(u); err != nil {
			return Client{}, errMetadata("%s %q: %v", field, u, err)
		}
	}
	if u := s.InitiateLoginURI; u != "" {
		if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" || pu.Host == "" || pu.Fragment != "" {
			return Client{}, errMetadata("initiate_login_uri must be an https URL")
		}
	}
	// What the provider itself will fetch or post to.
	contacted := map[string][]string{"backchannel_logout_uri": {m.BackchannelLogoutURI}, "jwks_uri": {s.JWKSURI},
		"sector_identifier_uri": {s.SectorIdentifierURI}, "request_uris": s.RequestURIs}
	for field, us := range contacted {
		for _, u := range us {
			if err := p.checkContacted(u); u != "" && err != nil {
				return Client{}, errMetadata("%s %q: %v", field, u, err)
			}
		}
	}
	if oerr := p.checkInformation(m, &s); oerr != nil {
		return Client{}, oerr
	}
	method := m.TokenEndpointAuthMethod
	if method == "" {
		method = AuthSecretBasic
	}
	c := Client{Name: m.ClientName, Public: method == AuthNone, RedirectURIs: m.RedirectURIs, Scopes: strings.Fields(m.Scope),
		TokenEndpointAuthMethod: method, PostLogoutRedirectURIs: m.PostLogoutRedirectURIs,
		BackchannelLogoutURI: m.BackchannelLogoutURI, FrontchannelLogoutURI: m.FrontchannelLogoutURI, ClientSettings: s}
	if oerr := p.checkSector(ctx, &c); oerr != nil {
		return Client{}, oerr
	}
	return c, nil
}

// defaultGrants fills in response and grant types and checks they agree
// (RFC 7591 §2.1): code needs authorization_code, id_token and token the
// implicit grant. Without grant_types, the ones the response types need
// (authorization_code for the default "code", as RFC 7591 says).
func defaultGrants(s *ClientSettings) *oauthError {
	if s.ResponseTypes == nil {
		switch {
		case s.GrantTypes == nil || slices.Contains(s.GrantTypes, GrantAuthorizationCode):
			s.ResponseTypes = []string{"code"}
		case slices.Contains(s.GrantTypes, "implicit"):
			return errMetadata("response_types is required with the implicit grant")
		}
	}
	var code, implicit bool
	for _, rt := range s.ResponseTypes {
		norm, ok := normalResponseType(rt)
		if !ok {
			return errMetadata("unsupported response type %q", rt)
		}
		t := parseResponseType(norm)
		code = code || t.code || norm == "none"
		implicit = implicit || t.frontChannelTokens()
	}
	var need []string
	if code {
		need = append(need, GrantAuthorizationCode)
	}
	if implicit {
		need = append(need, "implicit")
	}
	if s.GrantTypes == nil {
		s.GrantTypes = need
		return nil
	}
	for _, gt := range need {
		if !slices.Contains(s.GrantTypes, gt) {
			return errMetadata("grant_types must include %s for the registered response_types", gt)
		}
	}
	return nil
}

// checkInformation checks what a client tells about itself and fills in
// the signing algorithm and subject type.
func (p *Provider) checkInformation(m *clientMetadata, s *ClientSettings) *oauthError {
	if err := displayable(m.ClientName); err != nil {
		return errMetadata("client_name %v", err)
	}
	for field, v := range map[string]string{"software_id": s.SoftwareID, "software_version": s.SoftwareVersion} {
		if err := displayable(v); err != nil {
			return errMetadata("%s %v", field, err)
		}
	}
	for _, c := range s.Contacts {
		if c == "" || len(c) > 254 || strings.IndexFunc(c, unicode.IsControl) >= 0 {
			return errMetadata("contacts must be e-mail addresses")
		}
	}
	if s.DefaultMaxAge < 0 {
		return errMetadata("default_max_age must not be negative")
	}
	for _, v := range s.DefaultACRValues {
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return errMetadata("default_acr_values must be acr values without spaces")
		}
	}
	alg := p.cfg.Keys.Alg()
	if s.IDTokenSignedResponseAlg == "" {
		s.IDTokenSignedResponseAlg = alg
	}
	if s.IDTokenSignedResponseAlg != alg {
		return errMetadata("id_token_signed_response_alg must be %s (the provider's signing algorithm)", alg)
	}
	if a := s.UserinfoSignedResponseAlg; a != "" && a != "none" && a != alg {
		return errMetadata("userinfo_signed_response_alg must be %s (the provider's signing algorithm)", alg)
	}
	if s.SubjectType == "" {
		s.SubjectType = SubjectPublic
	}
	return nil
}

// displayable: a name shown to people, short, without control characters.
func displayable(v string) error {
	if len(v) > maxNameLength {
		return fmt.Errorf("is longer than %d characters", maxNameLength)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return errors.New("must not contain control characters")
	}
	// Format characters (bidi overrides, zero-width joiners) make a name
	// read otherwise than it is written on the consent page.
	if strings.IndexFunc(v, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) >= 0 {
		return errors.New("must not contain invisible formatting characters (bidi overrides, zero-width)")
	}
	if !utf8.ValidString(v) {
		return errors.New("must be UTF-8")
	}
	return nil
}

// checkClientURI applies the rules of redirect URIs (RFC 6749 §3.1.2,
// RFC 8252 §7, OIDC Dynamic Client Registration §2 application_type):
// absolute, no fragment, no script or local-content scheme; https, or
// http on loopback only; a web client's implicit flow https only and not
// on localhost; a native client's implicit flow a custom scheme or http
// on localhost; custom schemes for native clients only.
func checkClientURI(raw, appType string, implicit bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs():
		return errors.New("must be an absolute URI")
	case strings.Contains(raw, "#"):
		return errors.New("must not contain a fragment")
	case u.User != nil:
		return errors.New("must not contain user information")
	}
	switch u.Scheme {
	case "javascript", "data", "file", "vbscript", "blob", "about", "ftp", "ws", "wss":
		return fmt.Errorf("the %s: scheme is not allowed", u.Scheme)
	case "https":
		if u.Host == "" {
			return errors.New("has no host")
		}
		if implicit && appType == AppWeb && isLoopbackHost(u.Hostname()) {
			return errors.New("a web client using the implicit flow must not use localhost")
		}
		if implicit && appType == AppNative {
			return errors.New("a native client using the implicit flow must use a custom scheme or http on localhost")
		}
	case "http":
		if u.Host == "" || !isLoopbackHost(u.Hostname()) {
			return errors.New("must use https (http only on loopback: 127.0.0.1, [::1], localhost)")
		}
		if implicit && appType == AppWeb {
			return errors.New("a web client using the implicit flow must use https")
		}
	default:
		if appType != AppNative {
			return errors.New("a web client must use https (custom schemes are for native clients)")
		}
	}
	return nil
}

// checkWebURI: an https URL (http on loopback), without fragment.
func checkWebURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return errors.New("must be an absolute URL")
	case u.Scheme != "https" && (u.Scheme != "http" || !isLoopbackHost(u.Hostname())):
		return errors.New("must use https (http only on loopback)")
	case strings.Contains(raw, "#") || u.User != nil:
		return errors.New("must have neither fragment nor user information")
	}
	return nil
}

// isLoopbackHost: localhost (and *.localhost, RFC 6761 §6.3) or a
// loopback address.
func isLoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkContacted checks a URL of a registering client that the provider
// itself will fetch or post to (jwks_uri, request_uris,
// sector_identifier_uri, backchannel_logout_uri): https, and not on the
// provider's own machine or a link-local network, whose services
// (Caddy's admin API, debug endpoints, cloud metadata) trust their
// neighbours. Loopback, over http too, only while the provider itself
// runs on http (tests, local development). A client an admin configures
// is not held to this (validateFetchURL).
func (p *Provider) checkContacted(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	host := u.Hostname()
	ip, ipErr := netip.ParseAddr(host) // zones too ([::1%25eth0])
	ip = ip.Unmap().WithZone("")
	switch {
	case isLoopbackHost(host) || ipErr == nil && ip.IsLoopback():
		if !strings.HasPrefix(p.cfg.Issuer, "http:") || u.Scheme != "http" && u.Scheme != "https" {
			return errors.New("must not name the provider's own machine")
		}
		return nil
	case u.Scheme != "https":
		return errors.New("must use https")
	}
	if ipErr == nil && (ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast()) {
		return errors.New("must not name an unspecified, link-local or multicast address")
	}
	if ipErr == nil && p.guardRegistered() && !netguard.Public(ip) {
		// Names are checked when they are dialled (they may resolve
		// anywhere later); an address is refused at once.
		return errors.New("must not name a private or special-purpose address")
	}
	return nil
}

// checkSector fetches a client's sector_identifier_uri and requires
// every redirect URI to be listed in it (OIDC Core §8.1). The fetch is
// https, bounded in time and size, and follows no redirect; plain http
// only on loopback when the provider itself runs on http (tests and
// local development).
func (p *Provider) checkSector(ctx context.Context, c *Client) *oauthError {
	raw := c.SectorIdentifierURI
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Fragment != "" || p.checkContacted(raw) != nil {
		return errMetadata("sector_identifier_uri must be an https URL")
	}
	ctx, cancel := context.WithTimeout(ctx, sectorFetchTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := p.fetcher().Do(req)
	if err != nil {
		return errMetadata("sector_identifier_uri could not be fetched")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errMetadata("sector_identifier_uri answered %d, not 200", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSectorBytes+1))
	if err != nil || len(body) > maxSectorBytes {
		return errMetadata("sector_identifier_uri could not be read or is larger than %d KiB", maxSectorBytes>>10)
	}
	var listed []string
	if err := json.Unmarshal(body, &listed); err != nil {
		return errMetadata("sector_identifier_uri must hold a JSON array of URIs")
	}
	for _, r := range c.RedirectURIs {
		if !slices.Contains(listed, r) {
			return errRedirectURI("redirect URI %q is not listed at sector_identifier_uri", r)
		}
	}
	return nil
}

// fetcher is the HTTP client of the provider's requests for a client
// that is registering: it reaches only public addresses (see guarded).
func (p *Provider) fetcher() *http.Client {
	if p.cfg.HTTPClient != nil {
		return p.cfg.HTTPClient
	}
	if p.guardRegistered() {
		return netguard.Client(sectorFetchTimeout)
	}
	return &http.Client{Timeout: sectorFetchTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// guardRegistered: what registered clients name is reached on public
// addresses only — unless the admin allows private networks, or the
// provider runs on plain http (local development and tests).
func (p *Provider) guardRegistered() bool {
	return !p.cfg.RegistrationPrivateNetworks && strings.HasPrefix(p.cfg.Issuer, "https://")
}

// guarded reports whether the provider's requests for client must
// reach only public addresses: a client that registered itself.
func (p *Provider) guarded(c *Client) bool {
	return c != nil && !c.RegisteredAt.IsZero() && p.guardRegistered()
}
