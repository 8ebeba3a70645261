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
	f, err := p.tokens.findFamily(ctx, tok, false)
	if errors.Is(err, errRefreshExpired) {
		// Not the current token: a used one is found out by rotate.
		f = nil
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: loading refresh token", "error", err)
		writeJSONError(w, errServer("could not check the refresh token"))
		return
	}
	scopes, oerr := p.narrowScopes(f, form.Get("scope"))
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	// The next access token is written (indexed by the family) before
	// the family rotates, so revoking the family always finds it.
	var is *issued
	if f != nil && f.ClientID == client.ID {
		g := f.grant
		g.Scopes = scopes
		at := accessToken{grant: g, Family: f.ID, Offline: f.Offline}
		access, key, err := p.tokens.issueAccess(ctx, at, p.cfg.AccessTokenTTL)
		if err != nil {
			p.cfg.Logger.Error("gatehouse provider: issuing access token", "error", err)
			writeJSONError(w, errServer("could not store the access token"))
			return
		}
		is = &issued{access: access, accessKey: key}
	}
	done := false
	defer func() {
		if !done && is != nil {
			p.revokeIssued(ctx, is)
		}
	}()
	f, next, err := p.tokens.rotate(ctx, tok, client.ID, p.cfg.RefreshTokenIdle)
	switch {
	case errors.Is(err, errRefreshReused):
		p.cfg.Logger.Warn("gatehouse provider: refresh token reused; its family is revoked", "client", client.ID, "sub", f.Subject)
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RefreshReused, Client: client.ID, Subject: f.Subject, SID: f.SID, IP: regulate.ClientIP(r)})
		writeJSONError(w, errInvalidGrant("the refresh token was already used; every token of its grant is revoked"))
		return
	case errors.Is(err, errRefreshClient):
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, Client: client.ID, IP: regulate.ClientIP(r), Reason: "refresh token of another client"})
		writeJSONError(w, errInvalidGrant("the refresh token was issued to another client"))
		return
	case errors.Is(err, errRefreshExpired):
		writeJSONError(w, errInvalidGrant("the refresh token is invalid, expired or revoked"))
		return
	case err != nil:
		p.cfg.Logger.Error("gatehouse provider: rotating refresh token", "error", err)
		writeJSONError(w, errServer("could not rotate the refresh token"))
		return
	case is == nil:
		// Became current between the two reads: ask the client to retry
		// rather than hand out an unindexed token.
		writeJSONError(w, errServer("the refresh token changed while it was used; try again"))
		return
	}
	if oerr := p.familyStands(ctx, f); oerr != nil {
		_ = p.tokens.revokeFamily(context.WithoutCancel(ctx), f)
		writeJSONError(w, oerr)
		return
	}
	user, oerr := p.grantUser(ctx, f.Subject)
	if oerr != nil {
		_ = p.tokens.revokeFamily(context.WithoutCancel(ctx), f)
		writeJSONError(w, oerr)
		return
	}
	resp := tokenResponse{AccessToken: is.access, TokenType: "Bearer", ExpiresIn: expiresIn(p.cfg.AccessTokenTTL),
		RefreshToken: next, Scope: scopesString(scopes)}
	if hasScope(scopes, "openid") {
		// OIDC Core §12.2: a new ID token for the same authentication.
		g := f.grant
		g.Scopes = scopes
		if resp.IDToken, err = p.idToken(ctx, client, &g, user, idTokenExtras{AccessToken: is.access}); err != nil {
			p.cfg.Logger.Error("gatehouse provider: signing ID token", "error", err)
			writeJSONError(w, errServer("could not sign the ID token"))
			return
		}
	}
	done = true
	writeJSON(w, http.StatusOK, resp)
}

// narrowScopes is the scope parameter of a refresh request: a subset of
// the family's scopes (RFC 6749 §6); empty means all of them.
func (p *Provider) narrowScopes(f *family, raw string) ([]string, *oauthError) {
	if f == nil {
		return nil, nil
	}
	if raw == "" {
		return f.Scopes, nil
	}
	var out []string
	for _, s := range strings.Fields(raw) {
		if !slices.Contains(f.Scopes, s) {
			return nil, &oauthError{Code: "invalid_scope", Description: "scope " + s + " was not granted", status: http.StatusBadRequest}
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
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
