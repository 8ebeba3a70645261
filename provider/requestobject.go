package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// Request objects: authorization parameters in a JWT the client signed,
// passed by value (request) or by reference (request_uri) — OIDC Core
// §6, RFC 9101 (JAR) — and pushed requests (RFC 9126, par.go).
//
// Decisions:
//   - Unsigned request objects (alg none) are refused for every client:
//     they would carry nothing the query cannot, and discovery does not
//     list none (OIDC certification accepts a clean refusal then).
//   - A request object's parameters win over the query's, which fill in
//     the rest (OIDC Core §6.3.3); client_id and response_type, when in
//     both, must agree. RFC 9101 §5 is stricter (the object alone); a
//     pushed request (par.go) is used alone, as RFC 9126 §4 says.
//   - request_uri is a PAR urn, or an https URL the client registered in
//     request_uris (compared without fragment), fetched with a timeout
//     and a size limit, without redirects.
const (
	requestURIPrefix      = "urn:ietf:params:oauth:request_uri:"
	maxRequestObjectBytes = 32 << 10
)

// jwtOnlyClaims are a request object's own claims, not parameters.
var jwtOnlyClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"}

func errRequestObject(desc string) *oauthError {
	return &oauthError{Code: "invalid_request_object", Description: desc, status: http.StatusBadRequest}
}

func errRequestURI(desc string) *oauthError {
	return &oauthError{Code: "invalid_request_uri", Description: desc, status: http.StatusBadRequest}
}

// resolveRequestObject returns the effective parameters of an
// authorization request: params itself, or the parameters of its request
// object or pushed request. It also refuses requests that were not pushed
// from clients that must push them. On an error, redirectable says the
// error may go to the redirect URI (params, returned as given, then name
// a client and a redirect URI registered for it); otherwise it must be
// shown to the person. An unknown or missing client is left to the caller.
func (p *Provider) resolveRequestObject(ctx context.Context, r *http.Request, params url.Values) (url.Values, *oauthError, bool) {
	hasReq, hasURI := params.Has("request"), params.Has("request_uri")
	fail := func(e *oauthError) (url.Values, *oauthError, bool) {
		if e.Code == "invalid_request_object" || e.Code == "invalid_request_uri" {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, Client: params.Get("client_id"), IP: regulate.ClientIP(r),
				Reason: e.Code + ": " + e.Description})
		}
		return params, e, p.redirectable(ctx, params)
	}
	if hasReq && hasURI {
		return fail(errInvalidRequest("request and request_uri cannot be used together"))
	}
	clientID, err := single(params, "client_id")
	if err != nil || clientID == "" || len(clientID) > 128 {
		if hasReq || hasURI {
			return params, errInvalidRequest("client_id is required with request or request_uri"), false
		}
		return params, nil, false
	}
	client, err := p.cfg.Clients.Get(ctx, clientID)
	if err != nil {
		return params, nil, false
	}
	uri, err := single(params, "request_uri")
	if err != nil {
		return fail(errInvalidRequest("request_uri is repeated"))
	}
	var raw string
	switch {
	case hasURI && strings.HasPrefix(uri, requestURIPrefix):
		pushed, oerr := p.takePushed(ctx, client, strings.TrimPrefix(uri, requestURIPrefix))
		if oerr != nil {
			return fail(oerr)
		}
		return pushed, nil, false
	case p.cfg.RequirePAR || client.RequirePushedAuthorizationRequests:
		return fail(errInvalidRequest("this client must push its authorization requests to " + p.Endpoint(PathPAR) + " first"))
	case hasURI:
		var oerr *oauthError
		if raw, oerr = p.fetchRequestObject(ctx, client, uri); oerr != nil {
			return fail(oerr)
		}
	case hasReq:
		if raw, err = single(params, "request"); err != nil {
			return fail(errInvalidRequest("request is repeated"))
		}
	default:
		return params, nil, false
	}
	obj, oerr := p.requestObjectParams(ctx, client, raw)
	if oerr != nil {
		return fail(oerr)
	}
	if rt := params.Get("response_type"); rt != "" && obj.Has("response_type") && obj.Get("response_type") != rt {
		return fail(errInvalidRequest("response_type differs between the query and the request object"))
	}
	merged := url.Values{}
	for k, v := range params {
		if k != "request" && k != "request_uri" {
			merged[k] = v
		}
	}
	for k, v := range obj {
		merged[k] = v
	}
	return merged, nil, false
}

// requestMetadata is the discovery metadata (OIDC Discovery §3, RFC 8414
// §2, RFC 9126 §5) of JWT client authentication, request objects and PAR.
func (p *Provider) requestMetadata() map[string]any {
	algs := clientSigningAlgs()
	return map[string]any{
		"token_endpoint_auth_signing_alg_values_supported":         algs,
		"introspection_endpoint_auth_signing_alg_values_supported": algs,
		"revocation_endpoint_auth_signing_alg_values_supported":    algs,
		"request_parameter_supported":                              true,
		"request_uri_parameter_supported":                          true,
		"require_request_uri_registration":                         true,
		"request_object_signing_alg_values_supported":              algs,
		"pushed_authorization_request_endpoint":                    p.Endpoint(PathPAR),
		"require_pushed_authorization_requests":                    p.cfg.RequirePAR,
	}
}

// redirectable: params name a client and one of its redirect URIs, so an
// error can be sent there.
func (p *Provider) redirectable(ctx context.Context, params url.Values) bool {
	id, err1 := single(params, "client_id")
	uri, err2 := single(params, "redirect_uri")
	if err1 != nil || err2 != nil || id == "" || uri == "" {
		return false
	}
	c, err := p.cfg.Clients.Get(ctx, id)
	return err == nil && c.HasRedirectURI(uri)
}

// fetchRequestObject fetches a request object from one of the client's
// registered request_uris.
func (p *Provider) fetchRequestObject(ctx context.Context, client *Client, uri string) (string, *oauthError) {
	if !slices.ContainsFunc(client.RequestURIs, func(reg string) bool { return sameRequestURI(reg, uri) }) {
		return "", errRequestURI("request_uri is not registered for this client")
	}
	u, _, _ := strings.Cut(uri, "#")
	b, err := p.remote.fetch(ctx, u, "application/oauth-authz-req+jwt, application/jwt", maxRequestObjectBytes, p.guarded(client))
	if err != nil {
		p.cfg.Logger.Warn("gatehouse provider: fetching request object", "client", client.ID, "error", err)
		return "", errRequestURI("the request object could not be fetched from request_uri")
	}
	return string(bytes.TrimSpace(b)), nil
}

// requestObjectParams verifies a request object of client and returns
// its authorization parameters.
func (p *Provider) requestObjectParams(ctx context.Context, client *Client, raw string) (url.Values, *oauthError) {
	if len(raw) > maxRequestObjectBytes {
		return nil, errRequestObject("the request object is too large")
	}
	jws, err := parseClientJWT(raw)
	if err != nil {
		return nil, errRequestObject(err.Error())
	}
	allowed := append(slices.Clone(hmacAlgs), asymmetricAlgs...)
	if alg := client.RequestObjectSigningAlg; alg != "" {
		allowed = []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
	}
	payload, err := p.verifyClientJWT(ctx, client, jws, allowed)
	if err != nil {
		return nil, errRequestObject(err.Error())
	}
	var c jwt.Claims
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if json.Unmarshal(payload, &c) != nil || dec.Decode(&m) != nil || m == nil {
		return nil, errRequestObject("the request object's claims are not a JSON object")
	}
	switch {
	case c.Issuer != "" && c.Issuer != client.ID:
		return nil, errRequestObject("iss must be the client_id")
	case c.Audience != nil && !slices.Contains(c.Audience, p.cfg.Issuer):
		return nil, errRequestObject("aud must be the issuer " + p.cfg.Issuer)
	case m["request"] != nil || m["request_uri"] != nil:
		return nil, errRequestObject("a request object cannot hold request or request_uri")
	}
	if id, ok := m["client_id"]; ok && id != client.ID {
		return nil, errRequestObject("the request object's client_id is not the request's")
	}
	if err := checkTimes(&c, p.tokens.now(), false); err != nil {
		return nil, errRequestObject("the request object is " + err.Error())
	}
	out := url.Values{}
	for k, v := range m {
		if slices.Contains(jwtOnlyClaims, k) {
			continue
		}
		s, ok := paramValue(v)
		if !ok {
			return nil, errRequestObject("claim " + k + " cannot be an authorization parameter")
		}
		out.Set(k, s)
	}
	return out, nil
}

// paramValue is a request object claim as a query parameter: strings as
// they are, numbers and booleans as written, objects (claims) as JSON,
// arrays of strings space-separated.
func paramValue(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case map[string]any:
		b, err := json.Marshal(v)
		return string(b), err == nil
	case []any:
		var parts []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " "), true
	}
	return "", false
}
