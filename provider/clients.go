package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Token endpoint authentication methods.
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	// AuthSecretJWT and AuthPrivateKeyJWT authenticate with a JWT the
	// client signs with its secret or its private key (OIDC Core §9,
	// RFC 7523).
	AuthSecretJWT     = "client_secret_jwt"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// Client is a registered relying party.
type Client struct {
	ID   string `json:"client_id"`
	Name string `json:"name,omitempty"`
	// NamedBySite: the client serves several sites (Gatehouse's gates);
	// a sign-in page names the site it returns to (the host of the
	// redirect URI), not the client.
	NamedBySite bool `json:"-"`
	// Secret is the client secret as configured (Caddyfile clients). It
	// is never stored: clients added at run time keep only SecretHash.
	Secret     string `json:"-"`
	SecretHash []byte `json:"secret_hash,omitempty"`
	// Public clients (SPAs, native apps) have no secret and must use PKCE.
	Public       bool     `json:"public,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	// Scopes the client may request; empty means every scope the
	// provider has (the consent page lets the person refuse them).
	Scopes                  []string `json:"scopes,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI    string   `json:"backchannel_logout_uri,omitempty"`
	FrontchannelLogoutURI   string   `json:"frontchannel_logout_uri,omitempty"`
	ClientSettings
	// Static clients come from the configuration and cannot be changed
	// at run time.
	Static bool `json:"static,omitempty"`
	// RegisteredAt is set for clients that registered themselves (OIDC
	// Dynamic Client Registration); only they can be read, updated and
	// deleted with their RegistrationTokenHash (RFC 7592).
	RegisteredAt          time.Time `json:"registered_at,omitzero"`
	RegistrationTokenHash string    `json:"registration_token_hash,omitempty"`
}

// ClientSettings are a client's further registration metadata (OIDC
// Dynamic Client Registration §2, RFC 7591 §2), the same in the
// configuration, the store and the registration endpoint.
type ClientSettings struct {
	// GrantTypes the client may use; empty means authorization_code and
	// refresh_token.
	GrantTypes []string `json:"grant_types,omitempty"`
	// ResponseTypes the client may ask for at the authorization endpoint;
	// empty means code.
	ResponseTypes []string `json:"response_types,omitempty"`
	// FirstParty clients are the organisation's own applications: the
	// person is not asked to consent to what they receive.
	FirstParty bool `json:"first_party,omitempty"`
	// ResourceServer clients may introspect every access token (an API
	// checking the tokens callers present); others only their own.
	ResourceServer bool `json:"resource_server,omitempty"`
	// SubjectType is public (default) or pairwise (OIDC Core §8); a
	// pairwise client's sector is SectorIdentifierURI's host, or the
	// one host of its redirect URIs.
	SubjectType         string `json:"subject_type,omitempty"`
	SectorIdentifierURI string `json:"sector_identifier_uri,omitempty"`
	// UserinfoSignedResponseAlg, when set, makes userinfo answer with a
	// signed JWT (application/jwt).
	UserinfoSignedResponseAlg string `json:"userinfo_signed_response_alg,omitempty"`
	// FrontchannelLogoutSessionRequired: the front-channel logout URI
	// gets iss and sid (OIDC Front-Channel Logout §2).
	FrontchannelLogoutSessionRequired bool `json:"frontchannel_logout_session_required,omitempty"`

	// What a client tells about itself at registration, kept and shown
	// back as registered (OIDC Dynamic Client Registration §2, RFC 7591
	// §2). ApplicationType is web (default) or native.
	ApplicationType  string   `json:"application_type,omitempty"`
	LogoURI          string   `json:"logo_uri,omitempty"`
	ClientURI        string   `json:"client_uri,omitempty"`
	PolicyURI        string   `json:"policy_uri,omitempty"`
	TOSURI           string   `json:"tos_uri,omitempty"`
	InitiateLoginURI string   `json:"initiate_login_uri,omitempty"`
	Contacts         []string `json:"contacts,omitempty"`
	SoftwareID       string   `json:"software_id,omitempty"`
	SoftwareVersion  string   `json:"software_version,omitempty"`
	// DefaultMaxAge (seconds), RequireAuthTime and DefaultACRValues are
	// the client's defaults for its authentication requests.
	DefaultMaxAge    int      `json:"default_max_age,omitempty"`
	RequireAuthTime  bool     `json:"require_auth_time,omitempty"`
	DefaultACRValues []string `json:"default_acr_values,omitempty"`
	// IDTokenSignedResponseAlg is the algorithm the client expects its
	// ID tokens signed with: the provider's own.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
	// JWKS (an inline JWK set of public keys) or JWKSURI (an https URL
	// serving one) hold the keys private_key_jwt assertions and signed
	// request objects are verified with.
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI string          `json:"jwks_uri,omitempty"`
	// TokenEndpointAuthSigningAlg, when set, is the only algorithm the
	// client's assertions may use; RequestObjectSigningAlg the only one
	// its request objects may use (none is refused).
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	RequestObjectSigningAlg     string `json:"request_object_signing_alg,omitempty"`
	// RequirePushedAuthorizationRequests: the authorization endpoint
	// takes only request_uris from the PAR endpoint for this client.
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`
	// RequestURIs are the https URLs of request objects the client
	// publishes (compared without their fragment).
	RequestURIs []string `json:"request_uris,omitempty"`
}

// AllowedGrantTypes returns the grant types the client may use.
func (c *Client) AllowedGrantTypes() []string {
	if len(c.GrantTypes) == 0 {
		return []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	return c.GrantTypes
}

// UsesRedirects reports whether the client signs people in through the
// authorization endpoint (and so needs redirect URIs).
func (c *Client) UsesRedirects() bool {
	return c.Allows(GrantAuthorizationCode) || c.Allows("implicit")
}

// Allows reports whether the client may use grant type gt.
func (c *Client) Allows(gt string) bool { return slices.Contains(c.AllowedGrantTypes(), gt) }

// AllowedResponseTypes returns the response types the client may ask for.
func (c *Client) AllowedResponseTypes() []string {
	if len(c.ResponseTypes) == 0 {
		return []string{"code"}
	}
	return c.ResponseTypes
}

// knownGrantTypes are the grant types a client may be allowed ("implicit"
// only names, as registration metadata does, that the client uses the
// response types without a code).
var knownGrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantDeviceCode, "implicit"}

// validateGrants checks grant types, response types and subject type.
func (c *Client) validateGrants() error {
	for _, gt := range c.GrantTypes {
		if !slices.Contains(knownGrantTypes, gt) {
			return fmt.Errorf("client %s: unknown grant type %q", c.ID, gt)
		}
	}
	if c.Public && slices.Contains(c.GrantTypes, GrantClientCredentials) {
		return fmt.Errorf("client %s: a public client cannot use client_credentials", c.ID)
	}
	for _, rt := range c.ResponseTypes {
		norm, ok := normalResponseType(rt)
		if !ok {
			return fmt.Errorf("client %s: unsupported response type %q", c.ID, rt)
		}
		if strings.Contains(norm, "code") && len(c.GrantTypes) > 0 && !slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
			return fmt.Errorf("client %s: response type %q needs the authorization_code grant", c.ID, rt)
		}
	}
	switch c.SubjectType {
	case "", SubjectPublic:
	case SubjectPairwise:
		if c.SectorIdentifierURI != "" {
			if u, err := url.Parse(c.SectorIdentifierURI); err != nil || u.Host == "" ||
				u.Scheme != "https" && (u.Scheme != "http" || !isLoopbackHost(u.Hostname())) {
				return fmt.Errorf("client %s: sector_identifier_uri must be an https URL (http only on loopback)", c.ID)
			}
			break
		}
		host := ""
		for _, r := range c.RedirectURIs {
			u, _ := url.Parse(r)
			if host != "" && u.Hostname() != host {
				return fmt.Errorf("client %s: a pairwise client with redirect URIs on several hosts needs a sector_identifier_uri", c.ID)
			}
			host = u.Hostname()
		}
	default:
		return fmt.Errorf("client %s: subject_type must be public or pairwise", c.ID)
	}
	switch c.UserinfoSignedResponseAlg {
	case "", "RS256", "ES256", "none":
	default:
		return fmt.Errorf("client %s: userinfo_signed_response_alg must be RS256 or ES256", c.ID)
	}
	return nil
}

// DisplayName is the name shown to people.
func (c *Client) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// AuthMethod is the token endpoint auth method in force.
func (c *Client) AuthMethod() string {
	if c.Public {
		return AuthNone
	}
	if c.TokenEndpointAuthMethod == "" {
		return AuthSecretBasic
	}
	return c.TokenEndpointAuthMethod
}

// CheckSecret compares secret with the client's in constant time.
func (c *Client) CheckSecret(secret string) bool {
	if c.Public {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	want := c.SecretHash
	if c.Secret != "" {
		w := sha256.Sum256([]byte(c.Secret))
		want = w[:]
	}
	return len(want) == sha256.Size && subtle.ConstantTimeCompare(got[:], want) == 1
}

// HasRedirectURI reports whether uri is registered, by exact string match
// (OIDC Core §3.1.2.1; no normalisation, no wildcards).
func (c *Client) HasRedirectURI(uri string) bool { return slices.Contains(c.RedirectURIs, uri) }

// Validate checks a client definition.
func (c *Client) Validate() error {
	if c.ID == "" {
		return errors.New("client has no id")
	}
	if strings.ContainsAny(c.ID, " :\t\r\n") || len(c.ID) > 128 {
		return fmt.Errorf("client id %q must be at most 128 characters without spaces or colons", c.ID)
	}
	if len(c.RedirectURIs) == 0 && c.UsesRedirects() {
		return fmt.Errorf("client %s: at least one redirect_uri is required", c.ID)
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if err := validateRedirectURI(u); err != nil {
			return fmt.Errorf("client %s: %w", c.ID, err)
		}
	}
	if c.BackchannelLogoutURI != "" {
		if err := validateRedirectURI(c.BackchannelLogoutURI); err != nil {
			return fmt.Errorf("client %s: backchannel_logout_uri: %w", c.ID, err)
		}
	}
	if c.FrontchannelLogoutURI != "" {
		if err := validateRedirectURI(c.FrontchannelLogoutURI); err != nil {
			return fmt.Errorf("client %s: frontchannel_logout_uri: %w", c.ID, err)
		}
	}
	switch c.TokenEndpointAuthMethod {
	case AuthPrivateKeyJWT: // keys instead of a secret: validateKeys
	case "", AuthSecretBasic, AuthSecretPost, AuthSecretJWT:
		if !c.Public && c.Secret == "" && len(c.SecretHash) == 0 {
			return fmt.Errorf("client %s: a confidential client needs a secret (or mark it public)", c.ID)
		}
	case AuthNone:
		if !c.Public {
			return fmt.Errorf("client %s: token_endpoint_auth_method none is for public clients only", c.ID)
		}
	default:
		return fmt.Errorf("client %s: unsupported token_endpoint_auth_method %q (use client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt or none)", c.ID, c.TokenEndpointAuthMethod)
	}
	if err := c.validateKeys(); err != nil {
		return err
	}
	if c.Public && (c.Secret != "" || len(c.SecretHash) != 0) {
		return fmt.Errorf("client %s: a public client must not have a secret", c.ID)
	}
	for _, s := range c.Scopes {
		if err := validScopeName(s); err != nil {
			return fmt.Errorf("client %s: %w", c.ID, err)
		}
	}
	return c.validateGrants()
}

// ValidateRedirectURI checks one redirect (or logout) URI of a client's
// configuration: absolute, no fragment, a host for http(s).
func ValidateRedirectURI(raw string) error { return validateRedirectURI(raw) }

func validateRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("redirect URI %q must be an absolute URL", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q must not contain a fragment", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "file", "blob", "about", "view-source":
		// A browser runs or shows these itself: a code or token sent
		// there would be the page's to read.
		return fmt.Errorf("redirect URI %q uses the %s scheme, which no client can receive at", raw, u.Scheme)
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return fmt.Errorf("redirect URI %q has no host", raw)
	}
	return nil
}

// Clients is the client registry: clients from the configuration plus
// clients added at run time (kept in the store).
type Clients struct {
	st     store.Store
	mu     sync.RWMutex
	static map[string]*Client
}

const (
	keyClient = "client:"
	// keyClientHMAC keeps the secret itself of a run-time client that
	// signs JWTs with it (see Add).
	keyClientHMAC = "client-hmac:"
	setClients    = "clients"
)

// NewClients returns a registry with the given configured clients.
func NewClients(st store.Store, static []Client) (*Clients, error) {
	c := &Clients{st: st, static: map[string]*Client{}}
	for i := range static {
		cl := static[i]
		if err := cl.Validate(); err != nil {
			return nil, err
		}
		if _, dup := c.static[cl.ID]; dup {
			return nil, fmt.Errorf("client %s is defined twice", cl.ID)
		}
		cl.Static = true
		c.static[cl.ID] = &cl
	}
	return c, nil
}

// SetStatic adds or replaces a client that lives in the configuration
// (not the store), such as the gates' own client, which Gatehouse derives
// from the sites it protects.
func (c *Clients) SetStatic(cl Client) error {
	if err := cl.Validate(); err != nil {
		return err
	}
	cl.Static = true
	c.mu.Lock()
	defer c.mu.Unlock()
	c.static[cl.ID] = &cl
	return nil
}

// RemoveStatic removes a client SetStatic added.
func (c *Clients) RemoveStatic(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.static, id)
}

// IsStatic reports whether id is a client of the configuration.
func (c *Clients) IsStatic(id string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.static[id]
	return ok
}

// Delete removes a client registered at run time (a configured one
// stays). Deleting a missing client is not an error.
func (c *Clients) Delete(ctx context.Context, id string) error {
	if err := c.st.Apply(ctx, store.Delete(keyClient+id), store.Delete(keyClientHMAC+id), store.SetRemove(setClients, id)); err != nil {
		return fmt.Errorf("deleting client: %w", err)
	}
	return nil
}

// ErrUnknownClient: no such client.
var ErrUnknownClient = errors.New("unknown client")

// Get returns the client with id.
func (c *Clients) Get(ctx context.Context, id string) (*Client, error) {
	c.mu.RLock()
	cl, ok := c.static[id]
	c.mu.RUnlock()
	if ok {
		return cl, nil
	}
	if id == "" || len(id) > 128 {
		return nil, ErrUnknownClient
	}
	b, err := c.st.Get(ctx, keyClient+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownClient
	}
	if err != nil {
		return nil, fmt.Errorf("loading client: %w", err)
	}
	var stored Client
	if err := json.Unmarshal(b, &stored); err != nil {
		return nil, fmt.Errorf("decoding client %s: %w", id, err)
	}
	return &stored, nil
}

// Add registers a client at run time. secret is hashed before it is
// stored. A client id used by the configuration or the store is refused.
// The client cannot be managed with a registration access token (only
// the registration endpoint makes such clients).
//
// A client that signs JWTs with its secret (client_secret_jwt, HS*
// request objects) needs the secret itself to be verified: for it alone
// the secret is also kept, in the clear, under its own key (never in the
// client record, so listings do not show it). Sealing it would not
// protect it: every key Gatehouse could seal it with lives in the same
// store. Clients that can should use private_key_jwt.
func (c *Clients) Add(ctx context.Context, cl Client, secret string) error {
	cl.RegisteredAt, cl.RegistrationTokenHash = time.Time{}, ""
	return c.add(ctx, cl, secret)
}

// add is Add with further store operations made in the same batch.
func (c *Clients) add(ctx context.Context, cl Client, secret string, extra ...store.Op) error {
	if secret != "" {
		h := sha256.Sum256([]byte(secret))
		cl.SecretHash = h[:]
	}
	cl.Secret, cl.Static = "", false
	if err := cl.Validate(); err != nil {
		return err
	}
	var keep []store.Op
	if cl.needsPlainSecret() {
		if len(secret) < minHMACSecret {
			return fmt.Errorf("client %s: signing with the client secret needs a secret of at least %d characters", cl.ID, minHMACSecret)
		}
		keep = append(keep, store.Put(keyClientHMAC+cl.ID, []byte(secret), 0))
	}
	c.mu.RLock()
	_, static := c.static[cl.ID]
	c.mu.RUnlock()
	if static {
		return fmt.Errorf("client %s is defined in the configuration", cl.ID)
	}
	b, err := json.Marshal(cl)
	if err != nil {
		return err
	}
	ops := append([]store.Op{store.Create(keyClient+cl.ID, b, 0), store.SetAdd(setClients, cl.ID)}, keep...)
	if err := c.st.Apply(ctx, append(ops, extra...)...); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("client %s already exists", cl.ID)
		}
		return fmt.Errorf("saving client: %w", err)
	}
	return nil
}

// hmacSecret is the secret client signs JWTs with: the configured one,
// or the one Add kept ("" when there is none).
func (c *Clients) hmacSecret(ctx context.Context, cl *Client) (string, error) {
	if cl.Static || cl.Secret != "" {
		return cl.Secret, nil
	}
	b, err := c.st.Get(ctx, keyClientHMAC+cl.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("loading client secret: %w", err)
	}
	return string(b), nil
}

// Put registers or replaces a client at run time without going through the
// one-time Add (used for clients Gatehouse manages itself, such as gates).
func (c *Clients) Put(ctx context.Context, cl Client) error {
	cl.Static = false
	if err := cl.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(cl)
	if err != nil {
		return err
	}
	if err := c.st.Set(ctx, keyClient+cl.ID, b, 0); err != nil {
		return fmt.Errorf("saving client: %w", err)
	}
	return c.st.SetAdd(ctx, setClients, cl.ID)
}

// List returns every client, configured ones first, each group by id.
func (c *Clients) List(ctx context.Context) ([]Client, error) {
	var out []Client
	c.mu.RLock()
	for _, cl := range c.static {
		out = append(out, *cl)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	ids, err := c.st.SetMembers(ctx, setClients)
	if err != nil {
		return nil, fmt.Errorf("listing clients: %w", err)
	}
	for _, id := range ids {
		cl, err := c.Get(ctx, id)
		if errors.Is(err, ErrUnknownClient) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !cl.Static {
			out = append(out, *cl)
		}
	}
	return out, nil
}

// NewClientSecret returns a fresh random client secret (256 bits).
func NewClientSecret() string { return randomToken() }
