package provider

import (
	"maps"
	"net/http"
	"slices"
)

// discovery is the OpenID Provider metadata (OIDC Discovery §3). Every
// field states what the provider really does.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p.cfg.Keys.maybeReload(r.Context())
	var algs []string
	for _, k := range p.cfg.Keys.JWKS().Keys {
		if !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	authMethods := []string{AuthSecretBasic, AuthSecretPost, AuthSecretJWT, AuthPrivateKeyJWT, AuthNone}
	claims := append([]string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "acr_levels", "amr", "sid", "at_hash", "c_hash", "azp"},
		p.scopes.claims()...)
	meta := map[string]any{
		"issuer":                                         p.cfg.Issuer,
		"authorization_endpoint":                         p.Endpoint(PathAuthorize),
		"token_endpoint":                                 p.Endpoint(PathToken),
		"userinfo_endpoint":                              p.Endpoint(PathUserinfo),
		"jwks_uri":                                       p.Endpoint(PathJWKS),
		"introspection_endpoint":                         p.Endpoint(PathIntrospect),
		"revocation_endpoint":                            p.Endpoint(PathRevoke),
		"device_authorization_endpoint":                  p.Endpoint(PathDeviceAuthorization),
		"scopes_supported":                               p.scopes.names(),
		"response_types_supported":                       supportedResponseTypes,
		"response_modes_supported":                       []string{modeQuery, modeFragment, modeFormPost},
		"grant_types_supported":                          []string{GrantAuthorizationCode, "implicit", GrantRefreshToken, GrantClientCredentials, GrantDeviceCode},
		"subject_types_supported":                        []string{SubjectPublic, SubjectPairwise},
		"id_token_signing_alg_values_supported":          algs,
		"userinfo_signing_alg_values_supported":          algs,
		"token_endpoint_auth_methods_supported":          authMethods,
		"introspection_endpoint_auth_methods_supported":  authMethods,
		"revocation_endpoint_auth_methods_supported":     authMethods,
		"code_challenge_methods_supported":               []string{"S256"},
		"claims_supported":                               claims,
		"claim_types_supported":                          []string{"normal"},
		"acr_values_supported":                           p.cfg.Chain.Levels(),
		"prompt_values_supported":                        []string{"none", "login", "consent", "select_account"},
		"claims_parameter_supported":                     true,
		"end_session_endpoint":                           p.Endpoint(PathEndSession),
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"frontchannel_logout_supported":                  true,
		"frontchannel_logout_session_supported":          true,
		"check_session_iframe":                           p.Endpoint(PathCheckSession),
		"authorization_response_iss_parameter_supported": true,
	}
	if p.cfg.Registration != RegistrationOff {
		meta["registration_endpoint"] = p.Endpoint(PathRegister)
	}
	maps.Copy(meta, p.requestMetadata())
	writeJSON(w, http.StatusOK, meta)
}

// jwks publishes the public signing keys (RFC 7517).
func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p.cfg.Keys.maybeReload(r.Context())
	w.Header().Set("Access-Control-Allow-Origin", "*")
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_ = jsonEncode(w, p.cfg.Keys.JWKS())
}
