package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
)

// refreshGrant exchanges a refresh token (RFC 6749 §6, OIDC Core §12).
// The token rotates at every use; an old one presented again revokes
// the family (a stolen token is worth one use, by the thief or the
// client, and the other is then found out). An online family needs its
// SSO session alive; every family needs its user able to sign in.
func (p *Provider) refreshGrant(w http.ResponseWriter, r *http.Request, client *Client, form url.Values) {
	ctx := r.Context()
	tok := form.Get("refresh_token")
	if tok == "" {
		writeJSONError(w, errInvalidRequest("refresh_token is required"))
		return
	}
	var scope []string
	for _, s := range strings.Fields(form.Get("scope")) {
		if !slices.Contains(scope, s) {
			scope = append(scope, s)
		}
	}
	rot, err := p.tokens.rotate(ctx, tok, client.ID, scope, p.cfg.RefreshTokenIdle, p.cfg.AccessTokenTTL)
	switch {
	case errors.Is(err, errRefreshReused):
		f := rot.family
		p.cfg.Logger.Warn("gatehouse provider: refresh token reused; its family is revoked", "client", client.ID, "sub", f.Subject)
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RefreshReused, Client: client.ID, Subject: f.Subject, SID: f.SID, IP: regulate.ClientIP(r)})
		writeJSONError(w, errInvalidGrant("the refresh token was already used; every token of its grant is revoked"))
		return
	case errors.Is(err, errRefreshClient):
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, Client: client.ID, IP: regulate.ClientIP(r), Reason: "refresh token of another client"})
		writeJSONError(w, errInvalidGrant("the refresh token was issued to another client"))
		return
	case errors.Is(err, errRefreshScope):
		writeJSONError(w, &oauthError{Code: "invalid_scope", Description: "the scope asks for more than was granted", status: http.StatusBadRequest})
		return
	case errors.Is(err, errRefreshExpired):
		writeJSONError(w, errInvalidGrant("the refresh token is invalid, expired or revoked"))
		return
	case err != nil:
		p.cfg.Logger.Error("gatehouse provider: rotating refresh token", "error", err)
		writeJSONError(w, errServer("could not rotate the refresh token"))
		return
	}
	f := rot.family
	// What the family hangs on is checked after the rotation, so that a
	// logout racing with it is seen (the family was indexed by session).
	revoke := func() { _ = p.tokens.revokeFamily(context.WithoutCancel(ctx), f.ID) }
	if oerr := p.familyStands(ctx, f); oerr != nil {
		revoke()
		writeJSONError(w, oerr)
		return
	}
	user, oerr := p.grantUser(ctx, f.Subject)
	if oerr != nil {
		revoke()
		writeJSONError(w, oerr)
		return
	}
	resp := tokenResponse{AccessToken: rot.access, TokenType: "Bearer", ExpiresIn: expiresIn(p.cfg.AccessTokenTTL),
		RefreshToken: rot.refresh, Scope: scopesString(f.Scopes)}
	if hasScope(f.Scopes, "openid") {
		// OIDC Core §12.2: a new ID token for the same authentication.
		if resp.IDToken, err = p.idToken(ctx, client, &f.grant, user, idTokenExtras{AccessToken: rot.access}); err != nil {
			p.cfg.Logger.Error("gatehouse provider: signing ID token", "error", err)
			writeJSONError(w, errServer("could not sign the ID token"))
			return
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// familyStands checks what an online family hangs on: its SSO session.
func (p *Provider) familyStands(ctx context.Context, f *family) *oauthError {
	if f.Offline || f.SID == "" {
		return nil
	}
	if _, err := p.cfg.Sessions.Get(ctx, f.SID); errors.Is(err, session.ErrNoSession) {
		return errInvalidGrant("the sign-in session of this refresh token has ended")
	} else if err != nil {
		return errServer("could not check the session")
	}
	return nil
}
