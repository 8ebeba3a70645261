package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// approval is what the person let the client have: the scopes and the
// individually requested claims that survived consent.
type approval struct {
	Scopes []string
	Claims *claimsRequest
}

// respond ends a successful authorization with what the response type
// asks for — a code, an access token, an ID token, any mix, or nothing —
// recorded in the session for logout and sent the way the response mode
// says, with state, iss and session_state.
func (p *Provider) respond(w http.ResponseWriter, r *http.Request, req *authRequest, client *Client, s *session.Session, user users.User, out chain.Outcome, ok approval) {
	ctx := r.Context()
	// The client is recorded in the session first (for logout), and only
	// while the session is live: a logout that came first is not undone.
	_, err := p.cfg.Sessions.Modify(ctx, w, s.ID, func(s *session.Session) error {
		s.AddClient(req.ClientID)
		return nil
	})
	if errors.Is(err, session.ErrNoSession) {
		p.redirectError(w, r, req.target(), &oauthError{Code: "login_required", Description: "the sign-in session has ended"})
		return
	} else if err != nil {
		p.serverErrorPage(w, "saving session", err)
		return
	}
	rt := parseResponseType(req.ResponseType)
	g := grant{ClientID: req.ClientID, Subject: user.Subject, Scopes: ok.Scopes, SID: s.ID, Claims: ok.Claims,
		AuthTime: out.AuthTime, ACR: out.ACR, AMR: out.AMR, Levels: out.Levels}
	q := url.Values{}
	if rt.code {
		now := p.cfg.Sessions.Now()
		code := randomToken()
		rec := codeRecord{grant: g, RedirectURI: req.RedirectURI, Nonce: req.Nonce, Challenge: req.Challenge,
			Expires: now.Add(p.cfg.CodeTTL), Offline: slices.Contains(ok.Scopes, "offline_access")}
		b, _ := json.Marshal(rec)
		if err := p.cfg.Store.Set(ctx, hashKey(keyCode, code), b, max(codeRecordTTL, p.cfg.CodeTTL)); err != nil {
			p.serverErrorPage(w, "saving code", err)
			return
		}
		q.Set("code", code)
	}
	if rt.token {
		// An access token through the browser: short, no refresh token,
		// indexed by the session like every other.
		at, _, err := p.tokens.issueAccess(ctx, accessToken{grant: g}, p.cfg.AccessTokenTTL)
		if err != nil {
			p.serverErrorPage(w, "issuing access token", err)
			return
		}
		q.Set("access_token", at)
		q.Set("token_type", "Bearer")
		q.Set("expires_in", strconv.FormatInt(expiresIn(p.cfg.AccessTokenTTL), 10))
		q.Set("scope", scopesString(ok.Scopes))
	}
	if rt.idToken {
		id, err := p.idToken(ctx, client, &g, user, idTokenExtras{Nonce: req.Nonce, AccessToken: q.Get("access_token"), Code: q.Get("code")})
		if err != nil {
			p.serverErrorPage(w, "signing ID token", err)
			return
		}
		q.Set("id_token", id)
	}
	if rt.token || rt.idToken {
		p.cfg.Metrics.Grant("implicit") // tokens from the authorization endpoint
	}
	q.Set("session_state", SessionState(req.ClientID, originOf(req.RedirectURI), p.browserState(w, r), randomToken()[:16]))
	p.deliver(w, r, req.target(), q)
}

// deliver sends authorization response parameters to the client: in the
// query or the fragment of a redirect, or as a self-submitting form
// (OAuth 2.0 Form Post Response Mode). iss (RFC 9207) and state are
// added here, so every response and every error has them.
func (p *Provider) deliver(w http.ResponseWriter, r *http.Request, t target, q url.Values) {
	q.Set("iss", p.cfg.Issuer)
	if t.State != "" {
		q.Set("state", t.State)
	}
	noStore(w)
	switch t.Mode {
	case modeFormPost:
		fields := map[string]string{}
		for k := range q {
			fields[k] = q.Get(k)
		}
		web.Render(w, http.StatusOK, "form_post.html", web.Page{Title: "Continue", Static: p.staticPath(),
			Script: "form_post.js", FormAction: []string{originOf(t.RedirectURI)},
			Data: struct {
				Action string
				Fields map[string]string
			}{t.RedirectURI, fields}})
	case modeFragment:
		http.Redirect(w, r, withFragment(t.RedirectURI, q), http.StatusFound)
	default:
		http.Redirect(w, r, appendQuery(t.RedirectURI, q), http.StatusFound)
	}
}

// withFragment puts q in the fragment of u (registered redirect URIs
// have none).
func withFragment(u string, q url.Values) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	pu.Fragment = ""
	pu.RawFragment = ""
	return pu.String() + "#" + q.Encode()
}
