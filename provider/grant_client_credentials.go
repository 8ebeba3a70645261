package provider

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// clientCredentialsGrant gives a confidential client an access token on
// its own behalf (RFC 6749 §4.4): no user, no refresh token, no ID token,
// and only scopes that do not name a person (none for a client that
// registered itself).
func (p *Provider) clientCredentialsGrant(w http.ResponseWriter, r *http.Request, client *Client, form url.Values) {
	if client.Public {
		writeJSONError(w, &oauthError{Code: "unauthorized_client", Description: "a public client cannot use client_credentials", status: http.StatusBadRequest})
		return
	}
	if len(strings.Fields(form.Get("scope"))) > 0 && !client.RegisteredAt.IsZero() {
		// A client that registered itself chose its scopes itself, and
		// here no person consents to them: it gets none (an admin adds
		// a client that needs some).
		writeJSONError(w, &oauthError{Code: "invalid_scope", Description: "a client that registered itself gets no scope on its own behalf", status: http.StatusBadRequest})
		return
	}
	allowed := p.allowedScopes(client)
	var scopes []string
	for _, s := range strings.Fields(form.Get("scope")) {
		if userScope(s) {
			writeJSONError(w, &oauthError{Code: "invalid_scope", Description: "scope " + s + " is about a user; client_credentials has none", status: http.StatusBadRequest})
			return
		}
		if !slices.Contains(allowed, s) {
			writeJSONError(w, &oauthError{Code: "invalid_scope", Description: "this client may not ask for scope " + s, status: http.StatusBadRequest})
			return
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	at := accessToken{grant: grant{ClientID: client.ID, Scopes: scopes}}
	tok, _, err := p.tokens.issueAccess(r.Context(), at, p.cfg.AccessTokenTTL)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: issuing access token", "error", err)
		writeJSONError(w, errServer("could not store the access token"))
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: expiresIn(p.cfg.AccessTokenTTL), Scope: scopesString(scopes)})
}
