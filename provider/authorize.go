package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// authorize is the authorization endpoint (OIDC Core §3.1.2).
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "The authorization endpoint takes GET or POST.")
		return
	}
	if len(r.URL.RawQuery) > maxQueryBytes {
		p.errorPage(w, http.StatusRequestURITooLong, "Request too large", "The sign-in request is too large.")
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxQueryBytes)
	}
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Bad sign-in request", "The sign-in request could not be read.")
		return
	}
	params := r.Form
	if r.Method == http.MethodPost {
		params = r.PostForm
	} else {
		params = r.URL.Query()
	}
	params, reqErr, redirectable := p.resolveRequestObject(r.Context(), r, params)
	if reqErr != nil && !redirectable {
		p.errorPage(w, reqErr.status, "Bad sign-in request", "The application sent a sign-in request that cannot be used ("+reqErr.Error()+").")
		return
	}

	// Until client and redirect URI check out, errors go to the person,
	// never to the URI (OIDC Core §3.1.2.6, RFC 6749 §4.1.2.1).
	clientID, cerr := single(params, "client_id")
	redirectURI, rerr := single(params, "redirect_uri")
	if cerr != nil || rerr != nil || clientID == "" || len(clientID) > maxParamBytes || len(redirectURI) > maxParamBytes {
		p.errorPage(w, http.StatusBadRequest, "Bad sign-in request", "The application sent a sign-in request without a valid client_id or redirect_uri.")
		return
	}
	client, err := p.cfg.Clients.Get(r.Context(), clientID)
	if errors.Is(err, ErrUnknownClient) {
		p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.UnknownClient, Client: clientID, IP: regulate.ClientIP(r), Reason: "authorize"})
		p.errorPage(w, http.StatusBadRequest, "Unknown application", "The application that sent you here is not registered with this sign-in service.")
		return
	} else if err != nil {
		p.serverErrorPage(w, "looking up client", err)
		return
	}
	if redirectURI == "" || !client.HasRedirectURI(redirectURI) {
		p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.BadRedirectURI, Client: clientID, IP: regulate.ClientIP(r), Target: redirectURI})
		p.errorPage(w, http.StatusBadRequest, "Unregistered redirect address",
			"The application asked to send you back to an address it has not registered. For your safety you were not sent there.")
		return
	}
	// Errors go back the way the response would have (query, fragment or
	// form_post), with the state if it is sane.
	back := target{RedirectURI: redirectURI, State: params.Get("state"), Mode: responseModeOf(params)}
	if len(back.State) > maxParamBytes {
		back.State = ""
	}
	fail := func(e *oauthError) {
		if !client.RegisteredAt.IsZero() && params.Get("prompt") != "none" {
			// A client anyone could have registered: its redirect URI is
			// not followed at once on an error nobody interacted for, or
			// the provider's address would front any site (RFC 9700
			// §4.11.2). prompt=none still answers at once (silent
			// checks need it).
			p.errorInterstitial(w, r, back, e, client)
			return
		}
		p.redirectError(w, r, back, e)
	}
	if reqErr != nil {
		fail(reqErr)
		return
	}

	req, oerr := p.parseAuthRequest(params, client)
	if oerr != nil {
		fail(oerr)
		return
	}
	req.ClientID, req.RedirectURI = client.ID, redirectURI
	// The pages shown from here on (account chooser, notices, the
	// chain's) speak the language the client asked for.
	web.PreferLocales(w, req.UILocales)
	req.Browser = p.cfg.Sessions.BrowserID(w, r)
	req.ID = randomToken()[:22]
	// Chain records are kept to the second; so is the start.
	req.StartedAt = p.cfg.Sessions.Now().Truncate(time.Second)

	ctx := r.Context()
	// id_token_hint names the person the client expects (OIDC Core
	// §3.1.2.1): a session of someone else does not answer for them.
	var hinted *hint
	if raw := params.Get("id_token_hint"); raw != "" {
		h, err := p.verifyHint(ctx, raw)
		if err != nil || !slices.Contains(h.Audience, client.ID) {
			fail(errInvalidRequest("id_token_hint is not an ID token this provider issued to this client"))
			return
		}
		hinted = h
	}
	if !req.forceLogin() {
		s, user, err := p.liveSession(ctx, r)
		if err != nil {
			p.serverErrorPage(w, "loading session", err)
			return
		}
		if s != nil && hinted != nil && !p.hintNames(ctx, hinted, s.Subject) {
			if req.prompt("none") {
				fail(&oauthError{Code: "login_required", Description: "the signed-in user is not the one id_token_hint names"})
				return
			}
			// Someone else is signed in here: a fresh sign-in, as
			// whoever the person turns out to be.
			req.Prompt = append(req.Prompt, "login")
			if u, err := p.cfg.Users.Get(ctx, hinted.Subject); err == nil && req.LoginHint == "" {
				req.LoginHint = u.Username // a public sub names the account
			}
			s = nil
		}
		if s != nil && req.prompt("select_account") {
			p.chooseAccount(w, r, req, client, user)
			return
		}
		if s != nil {
			out, err := p.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, req.AcrValues, req.since())
			if err != nil {
				p.serverErrorPage(w, "evaluating session", err)
				return
			}
			if out.Done {
				p.finish(w, r, req, client, s, user, out)
				return
			}
		}
	}
	if req.prompt("none") {
		fail(&oauthError{Code: "login_required", Description: "the user must sign in"})
		return
	}
	p.startChain(w, r, req)
}

// resumeURL is where the chain sends the browser back: the sealed
// request is in it, so nothing was stored for a request that has not
// posted a form.
func (p *Provider) resumeURL(req *authRequest, extra string) (string, error) {
	sealed, err := p.cfg.Sessions.Seal(purposeAuthReq, req, authReqTTL)
	if err != nil {
		return "", err
	}
	return p.prefix + PathResume + "?req=" + url.QueryEscape(sealed) + extra, nil
}

// startChain hands the browser to the chain, which returns it to resume.
func (p *Provider) startChain(w http.ResponseWriter, r *http.Request, req *authRequest) {
	ret, err := p.resumeURL(req, "")
	if err != nil {
		p.serverErrorPage(w, "sealing the authorization request", err)
		return
	}
	err = p.cfg.Chain.Start(w, r, chain.Request{
		ReturnTo:   ret,
		AcrValues:  req.AcrValues,
		Since:      req.since(),
		ForceLogin: req.forceLogin(),
		LoginHint:  req.LoginHint,
		UILocales:  req.UILocales,
		Client:     p.requestName(r.Context(), req),
		ClientID:   req.ClientID,
	})
	if err != nil {
		p.serverErrorPage(w, "starting login", err)
	}
}

// chooseAccount answers prompt=select_account with a session: continue
// as the signed-in user, or sign in as someone else (OIDC Core §3.1.2.1).
func (p *Provider) chooseAccount(w http.ResponseWriter, r *http.Request, req *authRequest, client *Client, user users.User) {
	base, err := p.resumeURL(req, "&choose=")
	if err != nil {
		p.serverErrorPage(w, "sealing the authorization request", err)
		return
	}
	name := user.Username
	if user.Name != "" {
		name = user.Name + " (" + user.Username + ")"
	}
	web.Render(w, http.StatusOK, "choose.html", web.Page{Title: "Choose an account", Static: p.staticPath(),
		Data: struct {
			Client  string
			Choices []struct{ Name, URL string }
		}{client.DisplayName(), []struct{ Name, URL string }{
			{"Continue as " + name, base + "current"},
			{"Use another account", base + "other"},
		}}})
}

// liveSession returns the browser's SSO session and its user, or nils
// when there is none or the user can no longer sign in.
func (p *Provider) liveSession(ctx context.Context, r *http.Request) (*session.Session, users.User, error) {
	s, err := p.cfg.Sessions.Load(r)
	if errors.Is(err, session.ErrNoSession) {
		return nil, users.User{}, nil
	} else if err != nil {
		return nil, users.User{}, err
	}
	// Current: an account of a user source (LDAP) is checked there again
	// now and then, so one disabled there gets no code on its old session.
	u, err := p.cfg.Users.Current(ctx, s.Subject)
	if errors.Is(err, users.ErrNotFound) || err == nil && u.Disabled {
		return nil, users.User{}, nil
	} else if err != nil {
		return nil, users.User{}, err
	}
	return s, u, nil
}

// resume is where the chain returns the browser after login.
func (p *Provider) resume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req authRequest
	sealed := r.URL.Query().Get("req")
	if len(sealed) > maxQueryBytes || p.cfg.Sessions.Open(purposeAuthReq, sealed, &req) != nil || req.Browser == "" {
		p.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in request has expired. Go back to the application and start again.")
		return
	}
	if req.Browser != p.cfg.Sessions.BrowserID(w, r) {
		// The request belongs to the browser that started it (a code is
		// never handed to another). A sign-in finished here (a mailed
		// link opened in another browser) still holds in this one.
		if s, _, err := p.liveSession(ctx, r); err == nil && s != nil {
			web.Render(w, http.StatusOK, "notice.html", web.Page{Title: "You are signed in", Static: p.staticPath(),
				Data: struct{ Text, Link, LinkText string }{
					"You are signed in in this browser. The application was opened in another browser: open " +
						p.requestName(ctx, &req) + " again here to continue.", "", ""}})
			return
		}
		p.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in request belongs to another browser. Go back to the application and start again.")
		return
	}
	switch r.URL.Query().Get("choose") {
	case "other":
		// Another account: a fresh login, whoever it turns out to be.
		req.Prompt = append(slices.DeleteFunc(req.Prompt, func(v string) bool { return v == "select_account" }), "login")
		req.StartedAt = p.cfg.Sessions.Now().Truncate(time.Second)
		p.startChain(w, r, &req)
		return
	case "current":
		req.Prompt = slices.DeleteFunc(req.Prompt, func(v string) bool { return v == "select_account" })
		s, _, err := p.liveSession(ctx, r)
		if err != nil {
			p.serverErrorPage(w, "loading session", err)
			return
		}
		if s != nil {
			out, err := p.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, req.AcrValues, req.since())
			if err != nil {
				p.serverErrorPage(w, "evaluating session", err)
				return
			}
			if !out.Done {
				// The session needs more (a step-up): the chain asks.
				p.startChain(w, r, &req)
				return
			}
		}
	}
	s, user, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	if s == nil || req.forceLogin() && s.AuthTime().Before(req.StartedAt) {
		p.redirectError(w, r, req.target(), &oauthError{Code: "login_required", Description: "sign-in was not completed"})
		return
	}
	out, ok := p.satisfied(w, r, &req, s, &oauthError{Code: "access_denied", Description: "authentication was not completed"})
	if !ok {
		return
	}
	// One code per authorization request: the resume URL cannot be
	// replayed (the browser is signed in by now, so this write is not
	// one an unauthenticated client can cause).
	if !p.once(w, r, keyAuthDone+req.ID, "Sign-in already completed", "This sign-in request was already completed. Go back to the application.") {
		return
	}
	client, ok := p.stillRegistered(w, ctx, &req)
	if !ok {
		return
	}
	p.newBrowserState(w, r) // a sign-in changes the OP browser state
	p.finish(w, r, &req, client, s, user, out)
}

// stillRegistered reloads the client of a request that went through the
// login pages: it, and its redirect URI, may have gone meanwhile.
func (p *Provider) stillRegistered(w http.ResponseWriter, ctx context.Context, req *authRequest) (*Client, bool) {
	client, err := p.cfg.Clients.Get(ctx, req.ClientID)
	if errors.Is(err, ErrUnknownClient) || err == nil && !client.HasRedirectURI(req.RedirectURI) {
		p.errorPage(w, http.StatusBadRequest, "Unknown application", "The application that sent you here is no longer registered with this sign-in service.")
		return nil, false
	} else if err != nil {
		p.serverErrorPage(w, "looking up client", err)
		return nil, false
	}
	return client, true
}

// satisfied evaluates the session against the request; when the chain
// is not done, notDone goes back to the client.
func (p *Provider) satisfied(w http.ResponseWriter, r *http.Request, req *authRequest, s *session.Session, notDone *oauthError) (chain.Outcome, bool) {
	out, err := p.cfg.Chain.Evaluate(r.Context(), s.Subject, s.Passed, req.AcrValues, req.since())
	if err != nil {
		p.serverErrorPage(w, "evaluating session", err)
		return out, false
	}
	if !out.Done {
		p.redirectError(w, r, req.target(), notDone)
		return out, false
	}
	return out, true
}

// once marks key done, or shows the person title and detail if it was
// already: a step that must happen once per request.
func (p *Provider) once(w http.ResponseWriter, r *http.Request, key, title, detail string) bool {
	err := p.cfg.Store.Create(r.Context(), key, []byte{1}, authReqTTL)
	if errors.Is(err, store.ErrExists) {
		p.errorPage(w, http.StatusBadRequest, title, detail)
		return false
	} else if err != nil {
		p.serverErrorPage(w, "completing authorization request", err)
		return false
	}
	return true
}

// clientName is the name shown for a client id.
// requestName is what a sign-in page for req says it continues to: the
// client's name, or the site of a client named by its sites.
func (p *Provider) requestName(ctx context.Context, req *authRequest) string {
	c, err := p.cfg.Clients.Get(ctx, req.ClientID)
	if err != nil {
		return req.ClientID
	}
	if u, err := url.Parse(req.RedirectURI); c.NamedBySite && err == nil && u.Host != "" {
		return u.Host
	}
	return c.DisplayName()
}

func (p *Provider) clientName(ctx context.Context, id string) string {
	if c, err := p.cfg.Clients.Get(ctx, id); err == nil {
		return c.DisplayName()
	}
	return id
}

func (p *Provider) serverErrorPage(w http.ResponseWriter, what string, err error) {
	p.cfg.Logger.Error("gatehouse provider: "+what, "error", err)
	p.errorPage(w, http.StatusInternalServerError, "Something went wrong", "The sign-in service could not complete the request. Please try again in a moment.")
}
