package provider

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-idp/gatehouse/session"
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
	at, user, oerr := p.liveAccess(ctx, token)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	if !at.user() || !hasScope(at.Scopes, "openid") {
		writeJSONError(w, &oauthError{Code: "insufficient_scope", Description: "userinfo needs a token a person granted with the openid scope",
			status: http.StatusForbidden, wwwAuth: `Bearer error="insufficient_scope", scope="openid"`})
		return
	}
	client, err := p.cfg.Clients.Get(ctx, at.ClientID)
	if err != nil {
		writeJSONError(w, errInvalidToken("the client of this token is no longer registered"))
		return
	}
	claims := map[string]any{}
	var requested map[string]*claimSpec
	if at.Claims != nil {
		requested = at.Claims.Userinfo
	}
	p.scopes.release(claims, user, at.Scopes, requested)
	claims["sub"] = p.subjectFor(ctx, client, at.Subject)
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
	if alg := client.UserinfoSignedResponseAlg; alg != "" && alg != "none" {
		p.signedUserinfo(w, client, claims)
		return
	}
	writeJSON(w, http.StatusOK, claims)
}

// signedUserinfo answers with the claims as a signed JWT (OIDC Core
// §5.3.2) with iss and aud.
func (p *Provider) signedUserinfo(w http.ResponseWriter, client *Client, claims map[string]any) {
	if client.UserinfoSignedResponseAlg != p.cfg.Keys.Alg() {
		p.cfg.Logger.Error("gatehouse provider: client wants userinfo signed with an algorithm this provider has no key for",
			"client", client.ID, "alg", client.UserinfoSignedResponseAlg)
		writeJSONError(w, errServer("userinfo cannot be signed with "+client.UserinfoSignedResponseAlg))
		return
	}
	claims["iss"] = p.cfg.Issuer
	claims["aud"] = client.ID
	jws, err := p.cfg.Keys.SignClaims("JWT", claims)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: signing userinfo", "error", err)
		writeJSONError(w, errServer("could not sign userinfo"))
		return
	}
	w.Header().Set("Content-Type", "application/jwt")
	noStore(w)
	_, _ = w.Write([]byte(jws))
}

// liveAccess returns an access token's record and its user, if the
// token is live: not expired or revoked, its refresh family (if any)
// not revoked, its SSO session (unless offline) not ended, its user
// still able to sign in.
func (p *Provider) liveAccess(ctx context.Context, token string) (*accessToken, users.User, *oauthError) {
	at, err := p.tokens.access(ctx, token)
	if errors.Is(err, errTokenGone) {
		return nil, users.User{}, errInvalidToken("the access token is invalid or has expired")
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: loading access token", "error", err)
		return nil, users.User{}, errServer("could not check the access token")
	}
	// A token dies with its client (a registration deleted).
	if _, err := p.cfg.Clients.Get(ctx, at.ClientID); errors.Is(err, ErrUnknownClient) {
		return nil, users.User{}, errInvalidToken("the client of this token is no longer registered")
	} else if err != nil {
		return nil, users.User{}, errServer("could not check the access token")
	}
	if at.Family != "" {
		if _, _, err := p.tokens.familyByID(ctx, at.Family); errors.Is(err, errRefreshExpired) {
			return nil, users.User{}, errInvalidToken("the grant of this token was revoked")
		} else if err != nil {
			return nil, users.User{}, errServer("could not check the access token")
		}
	}
	// A token dies with its session (it is revoked then; this also holds
	// while a revocation is still being finished).
	if at.SID != "" && !at.Offline {
		if _, err := p.cfg.Sessions.Get(ctx, at.SID); errors.Is(err, session.ErrNoSession) {
			return nil, users.User{}, errInvalidToken("the sign-in session of this token has ended")
		} else if err != nil {
			return nil, users.User{}, errServer("could not check the session")
		}
	}
	if at.Subject == "" {
		return at, users.User{}, nil // a client's own token
	}
	user, err := p.cfg.Users.Current(ctx, at.Subject) // a federated account: checked with its source
	if errors.Is(err, users.ErrNotFound) || err == nil && user.Disabled {
		return nil, users.User{}, errInvalidToken("the user can no longer sign in")
	} else if err != nil {
		return nil, users.User{}, errServer("could not load the user")
	}
	return at, user, nil
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
