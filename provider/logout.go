package provider

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/gatehouse-idp/gatehouse/chain"
	"net/http"
	"net/url"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/web"
)

// hint is what a verified id_token_hint says.
type hint struct {
	Subject  string
	SID      string
	Audience []string
	// client is the first audience: the sub is the one it was given
	// (pairwise for a pairwise client).
	client *Client
}

// names reports whether the hint's sub is user sub as its client sees it.
func (p *Provider) hintNames(ctx context.Context, h *hint, sub string) bool {
	return h.Subject == p.subjectFor(ctx, h.client, sub)
}

// idTokenType is the typ header of our ID tokens; every other JWT we sign
// (logout tokens, gate assertions) has its own.
const idTokenType = "JWT"

// verifyHint checks an id_token_hint: an ID token this provider issued to
// a registered client. Our signature and issuer, typ JWT (not a logout
// token, not a gate's upstream assertion), every audience a registered
// client, a subject and a session id. An expired token is fine (OIDC
// RP-Initiated Logout §2: the hint's job is to name the session, and
// clients often hold expired ID tokens).
func (p *Provider) verifyHint(ctx context.Context, raw string) (*hint, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, errors.New("not a signed JWT")
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); typ != idTokenType {
		return nil, errors.New("not an ID token")
	}
	set := p.cfg.Keys.JWKS()
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		return nil, errors.New("not signed by this provider")
	}
	var c jwt.Claims
	var extra struct {
		SID    string          `json:"sid"`
		Azp    string          `json:"azp"`
		Events json.RawMessage `json:"events"`
		Nonce  *string         `json:"nonce"`
	}
	if err := tok.Claims(keys[0].Key, &c, &extra); err != nil {
		return nil, errors.New("bad signature")
	}
	if c.Issuer != p.cfg.Issuer || c.Subject == "" || extra.SID == "" || len(c.Audience) == 0 || extra.Events != nil {
		return nil, errors.New("not an ID token of this provider")
	}
	var first *Client
	for _, aud := range c.Audience {
		cl, err := p.cfg.Clients.Get(ctx, aud)
		if err != nil {
			return nil, errors.New("not issued to a registered client")
		}
		if first == nil {
			first = cl
		}
	}
	if extra.Azp != "" && !slices.Contains(c.Audience, extra.Azp) {
		return nil, errors.New("azp is not an audience")
	}
	return &hint{Subject: c.Subject, SID: extra.SID, Audience: c.Audience, client: first}, nil
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
		if h, err = p.verifyHint(ctx, raw); err != nil {
			p.errorPage(w, http.StatusBadRequest, "Bad sign-out request", "The application sent an ID token that this service did not issue to it.")
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
		if !c.RegisteredAt.IsZero() && h == nil {
			// A client anyone could have registered, and nothing shows the
			// request comes from it: no redirection (RP-Initiated Logout
			// §3; else the provider would redirect to any site).
			redirect = ""
		}
	}
	state := q.Get("state")

	s, err := p.cfg.Sessions.Load(r)
	if errors.Is(err, session.ErrNoSession) {
		s = nil
	} else if err != nil {
		p.logoutFailed(w, r, q, err)
		return
	}
	if s == nil && h != nil {
		// No session in this browser, but the hint names a live one
		// (signed in elsewhere, or the cookie was lost): end that one,
		// once the person confirms.
		hs, err := p.cfg.Sessions.Get(ctx, h.SID)
		if err != nil && !errors.Is(err, session.ErrNoSession) {
			p.logoutFailed(w, r, q, err)
			return
		}
		if hs != nil && p.hintNames(ctx, h, hs.Subject) {
			browser := p.cfg.Sessions.BrowserID(w, r)
			if r.Method != http.MethodPost || !p.cfg.Sessions.CheckCSRF(browser, "logout", q.Get("csrf")) {
				p.confirmLogout(w, r, q)
				return
			}
			if err := p.cfg.Logout.End(ctx, hs.ID, logout.UserLogout); err != nil {
				p.logoutFailed(w, r, q, err)
				return
			}
			s = hs // its clients' front-channel pages load below
		}
	} else if s != nil {
		tied := h != nil && p.hintNames(ctx, h, s.Subject) && h.SID == s.ID
		reason := logout.ByClient
		if !tied {
			// Cannot tell the request comes from this session's
			// application: ask the person (logout CSRF).
			browser := p.cfg.Sessions.BrowserID(w, r)
			if r.Method != http.MethodPost || !p.cfg.Sessions.CheckCSRF(browser, "logout", q.Get("csrf")) {
				p.confirmLogout(w, r, q)
				return
			}
			reason = logout.UserLogout
		}
		if err := p.cfg.Logout.End(ctx, s.ID, reason); err != nil {
			p.logoutFailed(w, r, q, err)
			return
		}
		p.cfg.Sessions.ClearCookie(w)
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
	// Remote providers the session came through (logout_upstream): the
	// person is offered to sign out there too, so the page waits.
	var upstream []chain.Upstream
	if s != nil {
		upstream = p.cfg.Chain.UpstreamLogouts(ctx, s.Passed)
	}
	if redirect != "" && len(frames) == 0 && len(upstream) == 0 {
		http.Redirect(w, r, redirect, http.StatusFound)
		return
	}
	refresh := redirect
	if len(upstream) > 0 {
		refresh = ""
	}
	// Front-channel logout (OpenID Connect Front-Channel Logout 1.0): one
	// hidden iframe per client, then on to the client (meta refresh, so
	// no JavaScript is needed).
	web.Render(w, http.StatusOK, "logged_out.html", web.Page{Title: "Signed out", Static: p.staticPath(),
		Message: "You are signed out of every application that used this sign-in.", FrameSrc: origins, Refresh: refresh,
		Data: loggedOut{Frames: frames, Continue: redirect, Upstream: upstream}})
}

// loggedOut is the signed-out page: the front-channel frames, where to
// go on, and the remote providers to sign out of too.
type loggedOut struct {
	Frames   []string
	Continue string
	Upstream []chain.Upstream
}

// logoutFailed tells the person the sign-out did not happen (the store
// could not record it) and offers to try again. Cookies are left alone:
// nothing is reported as signed out that is not.
func (p *Provider) logoutFailed(w http.ResponseWriter, r *http.Request, q url.Values, err error) {
	p.cfg.Logger.Error("gatehouse provider: sign-out could not be recorded", "error", err)
	p.logoutForm(w, r, q, http.StatusServiceUnavailable, "Sign-out did not complete",
		"The sign-in service could not record your sign-out, so you are still signed in. Please try again in a moment.",
		"Try to sign out again?")
}

// confirmLogout asks the person before ending the session.
func (p *Provider) confirmLogout(w http.ResponseWriter, r *http.Request, q url.Values) {
	p.logoutForm(w, r, q, http.StatusOK, "Sign out?", "", "Do you want to sign out of every application that uses this sign-in?")
}

// logoutForm shows a page whose button posts the sign-out request again,
// with a CSRF token bound to this browser.
func (p *Provider) logoutForm(w http.ResponseWriter, r *http.Request, q url.Values, status int, title, message, question string) {
	browser := p.cfg.Sessions.BrowserID(w, r)
	fields := map[string]string{"csrf": p.cfg.Sessions.CSRFToken(browser, "logout")}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state", "id_token_hint", "ui_locales"} {
		if v := q.Get(k); v != "" {
			fields[k] = v
		}
	}
	web.Render(w, status, "confirm.html", web.Page{Title: title, Static: p.staticPath(), Message: message,
		Data: struct {
			Action, Question, Submit string
			Fields                   map[string]string
		}{p.prefix + PathEndSession, question, "Sign out", fields}})
}

// frontchannel returns the front-channel logout URLs of the clients of
// s (with iss and sid for clients that require them), and their origins
// for the page's CSP.
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
		frame := c.FrontchannelLogoutURI
		if c.FrontchannelLogoutSessionRequired {
			// OIDC Front-Channel Logout §2: iss and sid name the session.
			frame = appendQuery(frame, url.Values{"iss": {p.cfg.Issuer}, "sid": {s.ID}})
		}
		frames = append(frames, frame)
		if o := u.Scheme + "://" + u.Host; !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return frames, origins
}
