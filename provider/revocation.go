package provider

import (
	"errors"
	"net/http"
)

// revoke is token revocation (RFC 7009). A client revokes its own access
// or refresh tokens; revoking a refresh token ends its whole grant (every
// access token issued from it, §2.1). An unknown or already revoked token
// is answered 200 like a revoked one (§2.2); another client's token is
// refused.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	client, tok, ok := p.tokenManagement(w, r, "revocation")
	if !ok {
		return
	}
	ctx := r.Context()
	notYours := &oauthError{Code: "unauthorized_client", Description: "the token was issued to another client", status: http.StatusBadRequest}
	if _, isRefresh := familyOf(tok); isRefresh {
		f, err := p.tokens.findFamily(ctx, tok, true)
		switch {
		case errors.Is(err, errRefreshExpired):
		case err != nil:
			p.cfg.Logger.Error("gatehouse provider: revoking", "error", err)
			writeJSONError(w, errServer("could not revoke the token"))
			return
		case f.ClientID != client.ID:
			writeJSONError(w, notYours)
			return
		default:
			if err := p.tokens.revokeFamily(ctx, f.ID); err != nil {
				p.cfg.Logger.Error("gatehouse provider: revoking", "error", err)
				writeJSONError(w, errServer("could not revoke the token"))
				return
			}
		}
		noStore(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	at, err := p.tokens.access(ctx, tok)
	switch {
	case errors.Is(err, errTokenGone):
	case err != nil:
		p.cfg.Logger.Error("gatehouse provider: revoking", "error", err)
		writeJSONError(w, errServer("could not revoke the token"))
		return
	case at.ClientID != client.ID:
		writeJSONError(w, notYours)
		return
	default:
		if err := p.tokens.revokeAccess(ctx, tok, at); err != nil {
			p.cfg.Logger.Error("gatehouse provider: revoking", "error", err)
			writeJSONError(w, errServer("could not revoke the token"))
			return
		}
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}
