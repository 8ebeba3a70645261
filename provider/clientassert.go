package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Client authentication with a JWT (OIDC Core §9, RFC 7523 §2.2, §3).
const (
	assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxAssertionBytes      = 8 << 10
	maxJTIBytes            = 256
	// maxAssertionLifetime bounds exp - now: an assertion is made for one
	// request, and its jti is remembered until it expires.
	maxAssertionLifetime = 5 * time.Minute
	// jwtLeeway absorbs clock skew on exp, nbf and iat.
	jwtLeeway = 30 * time.Second
	keyJTI    = "assertion-jti:"
	// typRequestObject is the typ of a JAR request object (RFC 9101
	// §10.8); such a JWT travels through browsers and is never taken as
	// a client's credential.
	typRequestObject = "oauth-authz-req+jwt"
)

// parseClientJWT parses a compact JWS a client signed. Only the algorithms
// a client may use parse: "none", unknown ones and encrypted JWTs fail.
func parseClientJWT(raw string) (*jose.JSONWebSignature, error) {
	if strings.Count(raw, ".") == 4 {
		return nil, errors.New("encrypted JWTs are not accepted")
	}
	all := append(slices.Clone(hmacAlgs), asymmetricAlgs...)
	jws, err := jose.ParseSignedCompact(raw, all)
	if err != nil {
		var h struct {
			Alg string `json:"alg"`
		}
		head, _, _ := strings.Cut(raw, ".")
		if b, derr := base64.RawURLEncoding.DecodeString(head); derr == nil && json.Unmarshal(b, &h) == nil && strings.EqualFold(h.Alg, "none") {
			return nil, errors.New("unsigned JWTs (alg none) are not accepted")
		}
		return nil, errors.New("not a JWT signed with a supported algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not a compact JWS")
	}
	return jws, nil
}

// verifyClientJWT checks the signature of jws with client's key material
// and returns the verified payload. allowed are the algorithms the
// client may use here.
func (p *Provider) verifyClientJWT(ctx context.Context, client *Client, jws *jose.JSONWebSignature, allowed []jose.SignatureAlgorithm) ([]byte, error) {
	h := jws.Signatures[0].Header
	if !slices.Contains(allowed, jose.SignatureAlgorithm(h.Algorithm)) {
		return nil, errors.New("algorithm " + h.Algorithm + " is not allowed for this client")
	}
	keys, err := p.verificationKeys(ctx, client, h.Algorithm, h.KeyID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if payload, err := jws.Verify(k); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("the signature does not verify")
}

// checkTimes applies exp (required or not), nbf and iat with jwtLeeway.
func checkTimes(c *jwt.Claims, now time.Time, expRequired bool) error {
	switch {
	case c.Expiry == nil && expRequired:
		return errors.New("exp is required")
	case c.Expiry != nil && !now.Before(c.Expiry.Time().Add(jwtLeeway)):
		return errors.New("expired")
	case c.NotBefore != nil && now.Add(jwtLeeway).Before(c.NotBefore.Time()):
		return errors.New("not valid yet (nbf)")
	case c.IssuedAt != nil && now.Add(jwtLeeway).Before(c.IssuedAt.Time()):
		return errors.New("issued in the future (iat)")
	}
	return nil
}

// authenticateAssertion authenticates a client by client_assertion:
// iss and sub are its id, aud names this provider, it is short-lived, it
// is used once, and it is signed the way the client registered —
// client_secret_jwt (HMAC keyed with its secret) or private_key_jwt (its
// registered public keys). Failures are regulated and audited like bad
// secrets.
func (p *Provider) authenticateAssertion(r *http.Request, form url.Values) (*Client, *oauthError) {
	if form.Get("client_assertion_type") != assertionTypeJWTBearer {
		return nil, errInvalidClient("client_assertion_type must be "+assertionTypeJWTBearer, false)
	}
	raw := form.Get("client_assertion")
	if raw == "" {
		return nil, errInvalidRequest("client_assertion is missing")
	}
	if len(raw) > maxAssertionBytes {
		return nil, errInvalidClient("client_assertion is too large", false)
	}
	jws, perr := parseClientJWT(raw)
	var unverified jwt.Claims
	if perr == nil && json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified) != nil {
		perr = errors.New("the claims are not a JSON object")
	}
	if perr != nil {
		// Attribute the refusal (regulation, audit) to the client the
		// JWT names, if it can be read.
		if parts := strings.Split(raw, "."); len(parts) == 3 {
			if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				_ = json.Unmarshal(b, &unverified)
			}
		}
	}
	// The client is the one client_id names, else the assertion's sub.
	id := form.Get("client_id")
	if id == "" {
		id = unverified.Subject
	}
	ctx := r.Context()
	ip := regulate.ClientIP(r)
	if id == "" || len(id) > 128 {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.BadClientSecret, IP: ip, Reason: "client assertion naming no client"})
		return nil, errInvalidClient("client authentication is required (client_id or the assertion's sub)", false)
	}
	done, oerr := p.guardCredential(ctx, id, ip)
	if oerr != nil {
		return nil, oerr
	}
	failed := false
	defer func() { done(failed) }()
	fail := func(event, why string) (*Client, *oauthError) {
		p.cfg.Audit.Record(ctx, audit.Event{Event: event, Client: id, IP: ip, Reason: "client assertion: " + why})
		failed = true
		return nil, errInvalidClient("client assertion refused: "+why, false)
	}
	if perr != nil {
		return fail(audit.BadClientSecret, perr.Error())
	}
	if unverified.Subject != id || unverified.Issuer != id {
		// Another client's assertion, or one naming someone else.
		return fail(audit.TokenMisuse, "iss and sub must both be the client_id")
	}
	client, err := p.cfg.Clients.Get(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		return fail(audit.UnknownClient, "unknown client")
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: looking up client", "error", err)
		return nil, errServer("could not look up the client")
	}
	h := jws.Signatures[0].Header
	used := AuthPrivateKeyJWT
	if isHMAC(h.Algorithm) {
		used = AuthSecretJWT
	}
	// The registered method is enforced; a confidential client that
	// registered none may use its secret as an HMAC key (as it may use it
	// in either other secret method).
	registered := client.TokenEndpointAuthMethod
	switch {
	case client.Public:
		return fail(audit.BadClientSecret, "a public client has no credentials")
	case registered == "" && used == AuthSecretJWT:
	case registered != used:
		return fail(audit.BadClientSecret, "this client must authenticate with "+client.AuthMethod())
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); strings.EqualFold(typ, typRequestObject) {
		return fail(audit.TokenMisuse, "a request object is not a client credential")
	}
	allowed := asymmetricAlgs
	switch {
	case client.TokenEndpointAuthSigningAlg != "":
		allowed = []jose.SignatureAlgorithm{jose.SignatureAlgorithm(client.TokenEndpointAuthSigningAlg)}
	case used == AuthSecretJWT:
		allowed = hmacAlgs
	}
	payload, err := p.verifyClientJWT(ctx, client, jws, allowed)
	if err != nil {
		return fail(audit.BadClientSecret, err.Error())
	}
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return fail(audit.BadClientSecret, "the claims are not a JSON object")
	}
	now := p.tokens.now()
	switch {
	case c.Issuer != client.ID || c.Subject != client.ID:
		return fail(audit.TokenMisuse, "iss and sub must both be the client_id")
	case !p.acceptsAudience(c.Audience, r):
		return fail(audit.BadClientSecret, "aud must be the token endpoint or the issuer")
	case c.ID == "" || len(c.ID) > maxJTIBytes:
		return fail(audit.BadClientSecret, "jti is required (at most 256 characters)")
	}
	if err := checkTimes(&c, now, true); err != nil {
		return fail(audit.BadClientSecret, err.Error())
	}
	if exp := c.Expiry.Time(); exp.After(now.Add(maxAssertionLifetime + jwtLeeway)) {
		return fail(audit.BadClientSecret, "exp is too far ahead (an assertion lives at most 5 minutes)")
	}
	// Single use: the jti is remembered (by hash, per client) until the
	// assertion could no longer be accepted anyway.
	ttl := c.Expiry.Time().Add(jwtLeeway).Sub(now)
	if err := p.cfg.Store.Create(ctx, hashKey(keyJTI, client.ID+"\x00"+c.ID), []byte{1}, ttl); errors.Is(err, store.ErrExists) {
		return fail(audit.TokenMisuse, "replayed (jti already used)")
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: recording assertion jti", "error", err)
		return nil, errServer("could not check the client")
	}
	return client, nil
}

// acceptsAudience: aud names the token endpoint, the issuer, or the
// endpoint that was called (introspection, revocation, PAR). The called
// endpoint's URL is built from the issuer, never from the Host header.
func (p *Provider) acceptsAudience(aud jwt.Audience, r *http.Request) bool {
	called := p.cfg.Issuer + strings.TrimPrefix(r.URL.Path, p.prefix)
	for _, a := range aud {
		if a == p.cfg.Issuer || a == p.Endpoint(PathToken) || a == called {
			return true
		}
	}
	return false
}
