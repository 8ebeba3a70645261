package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// userinfo is the UserInfo endpoint (OIDC Core §5.3), GET or POST with a
// Bearer token in the header (RFC 6750 §2.1) or the form body (§2.2).
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeJSONError(w, &oauthError{Code: "invalid_request", Description: "userinfo takes GET or POST", status: http.StatusMethodNotAllowed})
		return
	}
	token, oerr := bearerToken(w, r)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	ctx := r.Context()
	var at accessToken
	b, err := p.cfg.Store.Get(ctx, hashKey(keyAccessToken, token))
	if err == nil {
		err = json.Unmarshal(b, &at)
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && p.cfg.Sessions.Now().After(at.Expires) {
		writeJSONError(w, errInvalidToken("the access token is invalid or has expired"))
		return
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: loading access token", "error", err)
		writeJSONError(w, errServer("could not check the access token"))
		return
	}
	// A token dies with its session (it is revoked then; this also holds
	// while a revocation is still being finished).
	if at.SID != "" {
		if _, err := p.cfg.Sessions.Get(ctx, at.SID); errors.Is(err, session.ErrNoSession) {
			writeJSONError(w, errInvalidToken("the sign-in session of this token has ended"))
			return
		} else if err != nil {
			writeJSONError(w, errServer("could not check the session"))
			return
		}
	}
	user, err := p.cfg.Users.Get(ctx, at.Subject)
	if errors.Is(err, users.ErrNotFound) || err == nil && user.Disabled {
		writeJSONError(w, errInvalidToken("the user can no longer sign in"))
		return
	} else if err != nil {
		writeJSONError(w, errServer("could not load the user"))
		return
	}
	claims := scopeClaims(user, at.Scopes)
	claims["sub"] = at.Subject
	if at.ACR != "" {
		claims["acr"] = at.ACR
	}
	if len(at.Levels) > 0 {
		claims["acr_levels"] = at.Levels
	}
	if len(at.AMR) > 0 {
		claims["amr"] = at.AMR
	}
	claims["auth_time"] = at.AuthTime.Unix()
	writeJSON(w, http.StatusOK, claims)
}

// bearerToken finds the access token; exactly one way of sending it.
func bearerToken(w http.ResponseWriter, r *http.Request) (string, *oauthError) {
	var tokens []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", errInvalidToken("the Authorization header must be Bearer <token>")
		}
		tokens = append(tokens, strings.TrimSpace(tok))
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
		if err := r.ParseForm(); err != nil {
			return "", errInvalidRequest("the request body could not be read")
		}
		tokens = append(tokens, r.PostForm["access_token"]...)
	}
	switch len(tokens) {
	case 0:
		// RFC 6750 §3.1: no error code when no credentials were sent.
		return "", &oauthError{Code: "invalid_request", Description: "an access token is required",
			status: http.StatusUnauthorized, wwwAuth: `Bearer realm="gatehouse"`}
	case 1:
		if len(tokens[0]) > 512 {
			return "", errInvalidToken("the access token is invalid or has expired")
		}
		return tokens[0], nil
	default:
		return "", errInvalidRequest("send the access token one way only")
	}
}
