package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gatehouse-idp/gatehouse/internal/netguard"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// A client's key material: the algorithms it may sign with, its public
// keys (an inline JWK set or one fetched from its jwks_uri) and, for the
// HMAC algorithms, its secret. Client assertions (clientassert.go) and
// request objects (requestobject.go) are verified with it.

// hmacAlgs are keyed with the client secret (client_secret_jwt, HS*
// request objects); asymmetricAlgs with the client's public keys
// (private_key_jwt, signed request objects). "none" is in neither.
var (
	hmacAlgs       = []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}
	asymmetricAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}
)

// clientSigningAlgs is every algorithm a client may sign with, as
// discovery lists them.
func clientSigningAlgs() []string {
	var out []string
	for _, a := range append(slices.Clone(hmacAlgs), asymmetricAlgs...) {
		out = append(out, string(a))
	}
	return out
}

func isHMAC(alg string) bool { return slices.Contains(hmacAlgs, jose.SignatureAlgorithm(alg)) }
func isAsymmetric(alg string) bool {
	return slices.Contains(asymmetricAlgs, jose.SignatureAlgorithm(alg))
}

// minHMACSecret is the shortest client secret that can key HS256: RFC
// 7518 §3.2 wants a key at least as long as the hash (go-jose enforces
// it, so a shorter one could never verify).
const minHMACSecret = 32

// Limits on a client's keys and on what is fetched for it.
const (
	maxJWKSBytes      = 64 << 10
	maxClientKeys     = 20
	remoteTimeout     = 5 * time.Second
	jwksCacheTTL      = 5 * time.Minute
	jwksMinRefetch    = 10 * time.Second
	maxCachedJWKSURIs = 1024
)

// needsPlainSecret: the client signs JWTs with its secret, so the
// provider needs the secret itself, not only its hash.
func (c *Client) needsPlainSecret() bool {
	return c.TokenEndpointAuthMethod == AuthSecretJWT || isHMAC(c.TokenEndpointAuthSigningAlg) || isHMAC(c.RequestObjectSigningAlg)
}

// hasKeys: the client registered public keys.
func (c *Client) hasKeys() bool { return len(c.JWKS) > 0 || c.JWKSURI != "" }

// validateKeys checks the settings of JWT client authentication, request
// objects and pushed requests (called by Validate).
func (c *Client) validateKeys() error {
	method := c.TokenEndpointAuthMethod
	if c.Public && (method == AuthSecretJWT || method == AuthPrivateKeyJWT) {
		return fmt.Errorf("client %s: a public client cannot use %s", c.ID, method)
	}
	if len(c.JWKS) > 0 && c.JWKSURI != "" {
		return fmt.Errorf("client %s: give jwks or jwks_uri, not both", c.ID)
	}
	if len(c.JWKS) > 0 {
		if _, err := parseClientJWKS(c.JWKS); err != nil {
			return fmt.Errorf("client %s: jwks: %w", c.ID, err)
		}
	}
	if c.JWKSURI != "" {
		if err := validateFetchURL(c.JWKSURI, false); err != nil {
			return fmt.Errorf("client %s: jwks_uri: %w", c.ID, err)
		}
	}
	if method == AuthPrivateKeyJWT && !c.hasKeys() {
		return fmt.Errorf("client %s: private_key_jwt needs jwks or jwks_uri", c.ID)
	}
	if method == AuthSecretJWT && c.Secret != "" && len(c.Secret) < minHMACSecret {
		return fmt.Errorf("client %s: client_secret_jwt needs a secret of at least %d characters", c.ID, minHMACSecret)
	}
	switch alg := c.TokenEndpointAuthSigningAlg; {
	case alg == "":
	case isHMAC(alg) && method == AuthSecretJWT, isAsymmetric(alg) && method == AuthPrivateKeyJWT:
	case isHMAC(alg) || isAsymmetric(alg):
		return fmt.Errorf("client %s: token_endpoint_auth_signing_alg %s does not fit token_endpoint_auth_method %q", c.ID, alg, method)
	default:
		return fmt.Errorf("client %s: unsupported token_endpoint_auth_signing_alg %q", c.ID, alg)
	}
	switch alg := c.RequestObjectSigningAlg; {
	case alg == "":
	case alg == "none":
		return fmt.Errorf("client %s: unsigned request objects are not accepted (request_object_signing_alg none)", c.ID)
	case isHMAC(alg):
		if c.Public {
			return fmt.Errorf("client %s: a public client has no secret to sign request objects with %s", c.ID, alg)
		}
	case isAsymmetric(alg):
		if !c.hasKeys() {
			return fmt.Errorf("client %s: request_object_signing_alg %s needs jwks or jwks_uri", c.ID, alg)
		}
	default:
		return fmt.Errorf("client %s: unsupported request_object_signing_alg %q", c.ID, alg)
	}
	for _, u := range c.RequestURIs {
		if err := validateFetchURL(u, true); err != nil {
			return fmt.Errorf("client %s: request_uris: %w", c.ID, err)
		}
	}
	return nil
}

// ValidateClientJWKS checks a client's JWK set as registration does.
func ValidateClientJWKS(raw []byte) error {
	_, err := parseClientJWKS(raw)
	return err
}

// parseClientJWKS reads a client's JWK set: public keys only (a private
// or symmetric key there is a leaked secret, and an HMAC key would let
// the set's holder forge anything), each valid.
func parseClientJWKS(raw []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if len(raw) > maxJWKSBytes {
		return set, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("not a JWK set: %v", err)
	}
	if len(set.Keys) == 0 || len(set.Keys) > maxClientKeys {
		return set, fmt.Errorf("must hold 1 to %d keys", maxClientKeys)
	}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return set, fmt.Errorf("key %d (kid %q) is not a public key; publish public keys only", i, k.KeyID)
		}
		if !k.Valid() {
			return set, fmt.Errorf("key %d (kid %q) is not valid", i, k.KeyID)
		}
	}
	return set, nil
}

// validateFetchURL checks a URL the provider will fetch: https, or http
// on the loopback interface (a client on the same machine, and tests).
// A fragment is allowed only where the URL is compared, not fetched as
// is (request_uris: OIDC Registration §2 puts a content hash there).
func validateFetchURL(raw string, fragmentOK bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry user info", raw)
	}
	if u.Fragment != "" && !fragmentOK {
		return fmt.Errorf("%q must not have a fragment", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		return fmt.Errorf("%q must be https (http only on 127.0.0.1, [::1] or localhost)", raw)
	}
	return nil
}

// verificationKeys returns the keys that may have signed a JWT with alg
// and kid for client: its secret for HMAC, else its public keys
// compatible with alg (those named kid when there is one).
func (p *Provider) verificationKeys(ctx context.Context, client *Client, alg, kid string) ([]any, error) {
	if isHMAC(alg) {
		secret, err := p.cfg.Clients.hmacSecret(ctx, client)
		if err != nil {
			return nil, err
		}
		if secret == "" {
			return nil, errors.New("the client has no secret to verify " + alg + " with")
		}
		return []any{[]byte(secret)}, nil
	}
	var set jose.JSONWebKeySet
	switch {
	case len(client.JWKS) > 0:
		var err error
		if set, err = parseClientJWKS(client.JWKS); err != nil {
			return nil, err
		}
	case client.JWKSURI != "":
		var err error
		if set, err = p.remote.jwks(ctx, client.JWKSURI, kid, p.guarded(client)); err != nil {
			p.cfg.Logger.Warn("gatehouse provider: client keys", "client", client.ID, "error", err)
			return nil, errors.New("the keys at the client's jwks_uri are unavailable")
		}
	default:
		return nil, errors.New("the client has registered no keys")
	}
	var keys []any
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid || k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		keys = append(keys, k.Key)
	}
	if len(keys) == 0 {
		if kid != "" {
			return nil, errors.New("no registered key has the JWT's kid and fits " + alg)
		}
		return nil, errors.New("no registered key fits " + alg)
	}
	return keys, nil
}

// remoteFetcher fetches what clients publish (JWK sets, request objects)
// with a timeout, a size limit and no redirects, and caches JWK sets.
type remoteFetcher struct {
	client *http.Client
	// guarded reaches only public addresses: for registered clients.
	guarded *http.Client
	now     func() time.Time
	mu      sync.Mutex
	sets    map[string]*cachedJWKS
}

type cachedJWKS struct {
	mu      sync.Mutex // one fetch of a URI at a time
	set     jose.JSONWebKeySet
	ok      bool
	fetched time.Time
	attempt time.Time
}

func newRemoteFetcher(now func() time.Time) *remoteFetcher {
	return &remoteFetcher{now: now, sets: map[string]*cachedJWKS{}, client: &http.Client{
		Timeout: remoteTimeout,
		// A redirect could lead anywhere; the registered URL is the one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, guarded: netguard.Client(remoteTimeout)}
}

// fetch GETs uri (already validated) and returns at most limit bytes.
func (f *remoteFetcher) fetch(ctx context.Context, uri, accept string, limit int64, guarded bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	client := f.client
	if guarded {
		client = f.guarded
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: status %d", uri, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", uri, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("fetching %s: larger than %d bytes", uri, limit)
	}
	return b, nil
}

// jwks returns the key set at uri: from the cache while it is fresh and
// knows kid; else fetched again, at most once per jwksMinRefetch (so a
// stream of unknown kids cannot make the provider hammer the client).
func (f *remoteFetcher) jwks(ctx context.Context, uri, kid string, guarded bool) (jose.JSONWebKeySet, error) {
	f.mu.Lock()
	e := f.sets[uri]
	if e == nil {
		if len(f.sets) >= maxCachedJWKSURIs {
			for k := range f.sets { // drop one at random: the map stays bounded
				delete(f.sets, k)
				break
			}
		}
		e = &cachedJWKS{}
		f.sets[uri] = e
	}
	f.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := f.now()
	fresh := e.ok && now.Sub(e.fetched) < jwksCacheTTL
	if fresh && (kid == "" || len(e.set.Key(kid)) > 0) {
		return e.set, nil
	}
	if !e.attempt.IsZero() && now.Sub(e.attempt) < jwksMinRefetch {
		if fresh {
			return e.set, nil // the kid is unknown; it was looked for moments ago
		}
		return jose.JSONWebKeySet{}, fmt.Errorf("the keys at %s are unavailable (last fetch failed)", uri)
	}
	e.attempt = now
	b, err := f.fetch(ctx, uri, "application/jwk-set+json, application/json", maxJWKSBytes, guarded)
	if err == nil {
		var set jose.JSONWebKeySet
		if set, err = parseClientJWKS(b); err == nil {
			e.set, e.ok, e.fetched = set, true, now
			return set, nil
		}
		err = fmt.Errorf("keys at %s: %w", uri, err)
	}
	if fresh {
		return e.set, nil // keep the fresh set; the kid stays unknown
	}
	e.ok = false
	return jose.JSONWebKeySet{}, err
}

// sameRequestURI compares a request_uri with a registered one, leaving
// out fragments (a registered URI's fragment is a content hash).
func sameRequestURI(registered, got string) bool {
	r, _, _ := strings.Cut(registered, "#")
	g, _, _ := strings.Cut(got, "#")
	return r == g
}
