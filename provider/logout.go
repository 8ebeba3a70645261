package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/web"
)

// hint is what a verified id_token_hint says.
type hint struct {
	Subject  string
	SID      string
	Audience []string
}

// verifyHint checks an id_token_hint: our signature and our issuer. An
// expired token is fine (OIDC RP-Initiated Logout §2: the hint's job is
// to name the session, and clients often hold expired ID tokens).
func (p *Provider) verifyHint(raw string) (*hint, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, errors.New("not a signed JWT")
	}
	set := p.cfg.Keys.JWKS()
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		return nil, errors.New("not signed by this provider")
	}
	var c jwt.Claims
	var extra struct {
		SID string `json:"sid"`
	}
	if err := tok.Claims(keys[0].Key, &c, &extra); err != nil {
		return nil, errors.New("bad signature")
	}
	if c.Issuer != p.cfg.Issuer || c.Subject == "" {
		return nil, errors.New("not issued by this provider")
	}
	return &hint{Subject: c.Subject, SID: extra.SID, Audience: c.Audience}, nil
}

// endSession is the RP-initiated logout endpoint (OpenID Connect
// RP-Initiated Logout 1.0), GET or POST.
func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Sign-out takes GET or POST.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxQueryBytes)
	if len(r.URL.RawQuery) > maxQueryBytes || r.ParseForm() != nil {
		p.errorPage(w, http.StatusBadRequest, "Bad sign-out request", "The sign-out request could not be read.")
		return
	}
	q := r.Form
	ctx := r.Context()

	var h *hint
	if raw := q.Get("id_token_hint"); raw != "" {
		var err error
		if h, err = p.verifyHint(raw); err != nil {
			p.errorPage(w, http.StatusBadRequest, "Bad sign-out request", "The application sent an ID token that this service did not issue.")
			return
		}
	}
	clientID := q.Get("client_id")
	if h != nil {
		if clientID != "" && !slices.Contains(h.Audience, clientID) {
			p.errorPage(w, http.StatusBadRequest, "Bad sign-out request", "The client_id does not match the ID token.")
			return
		}
		if clientID == "" && len(h.Audience) == 1 {
			clientID = h.Audience[0]
		}
	}
	redirect := q.Get("post_logout_redirect_uri")
	if redirect != "" {
		c, err := p.cfg.Clients.Get(ctx, clientID)
		if err != nil || !slices.Contains(c.PostLogoutRedirectURIs, redirect) {
			p.errorPage(w, http.StatusBadRequest, "Unregistered return address",
				"The application asked to send you to an address it has not registered for after sign-out. For your safety you were not sent there.")
			return
		}
	}
	state := q.Get("state")

	s, _, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	if s != nil {
		tied := h != nil && h.Subject == s.Subject && (h.SID == "" || h.SID == s.ID)
		if !tied {
			// Cannot tell the request comes from this session's
			// application: ask the person (logout CSRF).
			browser := p.cfg.Sessions.Browser(w, r)
			if r.Method != http.MethodPost || !p.cfg.Sessions.CheckCSRF(browser, "logout", q.Get("csrf")) {
				p.confirmLogout(w, r, q)
				return
			}
		}
		if err := p.cfg.Sessions.End(ctx, w, s); err != nil {
			p.serverErrorPage(w, "ending session", err)
			return
		}
		p.newBrowserState(w, nil) // relying parties' iframes see "changed"
	}
	if redirect != "" {
		v := url.Values{}
		if state != "" {
			v.Set("state", state)
		}
		redirect = appendQuery(redirect, v)
	}
	frames, origins := p.frontchannel(ctx, s)
	if redirect != "" && len(frames) == 0 {
		http.Redirect(w, r, redirect, http.StatusFound)
		return
	}
	// Front-channel logout (OpenID Connect Front-Channel Logout 1.0): one
	// hidden iframe per client, then on to the client (meta refresh, so
	// no JavaScript is needed).
	web.Render(w, http.StatusOK, "logged_out.html", web.Page{Title: "Signed out", Static: p.staticPath(),
		Message: "You are signed out of every application that used this sign-in.", FrameSrc: origins, Refresh: redirect,
		Data: struct {
			Frames   []string
			Continue string
		}{frames, redirect}})
}

// frontchannel returns the front-channel logout URLs (with iss and sid)
// of the clients of s, and their origins for the page's CSP.
func (p *Provider) frontchannel(ctx context.Context, s *session.Session) (frames, origins []string) {
	if s == nil {
		return nil, nil
	}
	for _, id := range s.Clients {
		c, err := p.cfg.Clients.Get(ctx, id)
		if err != nil || c.FrontchannelLogoutURI == "" {
			continue
		}
		u, err := url.Parse(c.FrontchannelLogoutURI)
		if err != nil {
			continue
		}
		frames = append(frames, appendQuery(c.FrontchannelLogoutURI, url.Values{"iss": {p.cfg.Issuer}, "sid": {s.ID}}))
		if o := u.Scheme + "://" + u.Host; !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return frames, origins
}

// confirmLogout asks the person before ending the session.
func (p *Provider) confirmLogout(w http.ResponseWriter, r *http.Request, q url.Values) {
	browser := p.cfg.Sessions.Browser(w, r)
	fields := map[string]string{"csrf": p.cfg.Sessions.CSRFToken(browser, "logout")}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state", "id_token_hint", "ui_locales"} {
		if v := q.Get(k); v != "" {
			fields[k] = v
		}
	}
	web.Render(w, http.StatusOK, "confirm.html", web.Page{Title: "Sign out?", Static: p.staticPath(),
		Data: struct {
			Action, Question, Submit string
			Fields                   map[string]string
		}{p.prefix + PathEndSession, "Do you want to sign out of every application that uses this sign-in?", "Sign out", fields}})
}
