package provider

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Paths of the token management endpoints.
const (
	PathIntrospect = "/introspect"
	PathRevoke     = "/revoke"
)

// introspect is token introspection (RFC 7662). The caller authenticates
// as a client; it learns about its own tokens, or, as a resource server,
// about every access token. Anything else — unknown, expired, revoked,
// of an ended session or a disabled user, another client's — is
// {"active": false}, and nothing more (§2.2).
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	client, tok, ok := p.tokenManagement(w, r, "introspection")
	if !ok {
		return
	}
	ctx := r.Context()
	inactive := map[string]any{"active": false}
	// Refresh tokens have their own form ("<family>.<secret>"); access
	// tokens have no dot. token_type_hint is not needed (§2.1 lets it be
	// ignored).
	if _, isRefresh := familyOf(tok); isRefresh {
		f, err := p.tokens.findFamily(ctx, tok, false)
		if errors.Is(err, errRefreshExpired) || err == nil && f.ClientID != client.ID {
			writeJSON(w, http.StatusOK, inactive)
			return
		} else if err != nil {
			p.cfg.Logger.Error("gatehouse provider: introspecting", "error", err)
			writeJSONError(w, errServer("could not check the token"))
			return
		}
		if p.familyStands(ctx, f) != nil {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		user, oerr := p.grantUser(ctx, f.Subject)
		if oerr != nil {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		exp := f.LastUsed.Add(p.cfg.RefreshTokenIdle)
		if f.Absolute.Before(exp) {
			exp = f.Absolute
		}
		out := p.introspection(ctx, client, &f.grant, user.Username, f.LastUsed, exp)
		writeJSON(w, http.StatusOK, out)
		return
	}
	at, user, oerr := p.liveAccess(ctx, tok)
	if oerr != nil && oerr.Code == "server_error" {
		writeJSONError(w, oerr)
		return
	}
	if oerr != nil || at.ClientID != client.ID && !client.ResourceServer {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	out := p.introspection(ctx, client, &at.grant, user.Username, at.Issued, at.Expires)
	out["token_type"] = "Bearer"
	writeJSON(w, http.StatusOK, out)
}

// tokenManagement reads an introspection or revocation request: an
// authenticated client and the token it asks about.
func (p *Provider) tokenManagement(w http.ResponseWriter, r *http.Request, what string) (*Client, string, bool) {
	form, oerr := p.readTokenForm(w, r, what)
	if oerr == nil {
		var client *Client
		if client, oerr = p.authenticateClient(r, form); oerr == nil {
			if tok := form.Get("token"); tok != "" {
				return client, tok, true
			}
			oerr = errInvalidRequest("token is required")
		}
	}
	writeJSONError(w, oerr)
	return nil, "", false
}

// introspection is the answer for an active token of grant g.
func (p *Provider) introspection(ctx context.Context, caller *Client, g *grant, username string, iat, exp time.Time) map[string]any {
	out := map[string]any{
		"active":    true,
		"client_id": g.ClientID,
		"scope":     scopesString(g.Scopes),
		"iss":       p.cfg.Issuer,
		"exp":       exp.Unix(),
		"aud":       g.ClientID,
	}
	if !iat.IsZero() {
		out["iat"] = iat.Unix()
	}
	if g.Subject == "" {
		out["sub"] = g.ClientID // a client's own token
		return out
	}
	// The subject as the token's client knows it (pairwise stays pairwise).
	owner, err := p.cfg.Clients.Get(ctx, g.ClientID)
	if err != nil {
		owner = caller
	}
	out["sub"] = p.subjectFor(ctx, owner, g.Subject)
	if owner.SubjectType != SubjectPairwise {
		out["username"] = username
	}
	if g.SID != "" {
		out["sid"] = g.SID
	}
	if !g.AuthTime.IsZero() {
		out["auth_time"] = g.AuthTime.Unix()
	}
	if g.ACR != "" {
		out["acr"] = g.ACR
	}
	if len(g.AMR) > 0 {
		out["amr"] = g.AMR
	}
	return out
}
