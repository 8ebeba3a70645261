package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Limits on authorization request input. Real requests are far smaller;
// anything beyond is an attack or a bug and gets a clear error. The
// request travels sealed through the login pages' URLs, so these bounds
// also bound those URLs.
const (
	maxQueryBytes = 16 << 10
	maxParamBytes = 2048
	authReqTTL    = 30 * time.Minute
	keyCode       = "code:"
	keyAuthDone   = "authreq-done:"
	// codeRecordTTL keeps a redeemed code's record after it stops being
	// redeemable, so a replay is recognised and its tokens revoked.
	codeRecordTTL  = 10 * time.Minute
	purposeAuthReq = "authorize"
)

// paramLimits are tighter bounds for parameters that are echoed or kept.
var paramLimits = map[string]int{
	"state": 2048, "nonce": 512, "login_hint": 256, "ui_locales": 64, "acr_values": 256,
	"scope": 512, "prompt": 64, "max_age": 10, "response_type": 64, "response_mode": 32,
	"code_challenge": 128, "code_challenge_method": 16, "display": 16, "id_token_hint": 8192,
}

// pkceChallenge is the form of an S256 challenge and of a verifier
// (RFC 7636 §4.1, §4.2): 43 to 128 unreserved characters.
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

// authRequest is a validated authorization request. It is not stored:
// while the browser walks the chain it travels sealed (encrypted,
// authenticated, bound to the browser, expiring) in the return URL.
type authRequest struct {
	// ID makes the request single use once it comes back from the chain.
	ID          string         `json:"id"`
	Browser     string         `json:"browser"`
	ClientID    string         `json:"client_id"`
	RedirectURI string         `json:"redirect_uri"`
	Scopes      []string       `json:"scopes"`
	State       string         `json:"state,omitempty"`
	Nonce       string         `json:"nonce,omitempty"`
	Challenge   string         `json:"code_challenge,omitempty"`
	AcrValues   []string       `json:"acr_values,omitempty"`
	MaxAge      *time.Duration `json:"max_age,omitempty"`
	Prompt      []string       `json:"prompt,omitempty"`
	LoginHint   string         `json:"login_hint,omitempty"`
	UILocales   string         `json:"ui_locales,omitempty"`
	// EssentialACR: the claims parameter asked for acr as essential; a
	// login that does not reach a requested level is then an error.
	EssentialACR bool      `json:"essential_acr,omitempty"`
	StartedAt    time.Time `json:"started_at"`
}

func (a *authRequest) prompt(v string) bool { return slices.Contains(a.Prompt, v) }

// since is the earliest time a passed module counts for this request:
// max_age before the request began, or its start for a forced login.
func (a *authRequest) since() time.Time {
	switch {
	case a.forceLogin():
		return a.StartedAt
	case a.MaxAge != nil:
		return a.StartedAt.Add(-*a.MaxAge)
	}
	return time.Time{}
}

// forceLogin: the user must authenticate again now (prompt=login,
// max_age=0).
func (a *authRequest) forceLogin() bool {
	return a.prompt("login") || (a.MaxAge != nil && *a.MaxAge == 0)
}

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
	state := params.Get("state")
	fail := func(e *oauthError) {
		st := state
		if len(st) > maxParamBytes {
			st = ""
		}
		p.redirectError(w, r, redirectURI, st, e)
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
	req.Browser = p.cfg.Sessions.BrowserID(w, r)
	req.ID = randomToken()[:22]
	// Chain records are kept to the second; so is the start.
	req.StartedAt = p.cfg.Sessions.Now().Truncate(time.Second)

	ctx := r.Context()
	if !req.forceLogin() {
		s, user, err := p.liveSession(ctx, r)
		if err != nil {
			p.serverErrorPage(w, "loading session", err)
			return
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
				p.issueCode(w, r, req, s, user, out)
				return
			}
		}
	}
	if req.prompt("none") {
		fail(&oauthError{Code: "login_required", Description: "the user must sign in"})
		return
	}
	p.startChain(w, r, req, client.DisplayName())
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
func (p *Provider) startChain(w http.ResponseWriter, r *http.Request, req *authRequest, clientName string) {
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
		Client:     clientName,
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

// parseAuthRequest validates everything but client_id and redirect_uri.
func (p *Provider) parseAuthRequest(params url.Values, client *Client) (*authRequest, *oauthError) {
	for k, vs := range params {
		if len(vs) > 1 {
			return nil, errInvalidRequest("parameter " + k + " is repeated")
		}
		limit, ok := paramLimits[k]
		if !ok {
			limit = maxParamBytes
		}
		if len(vs[0]) > limit {
			return nil, errInvalidRequest("parameter " + k + " is too long (at most " + strconv.Itoa(limit) + " bytes)")
		}
	}
	switch rt := params.Get("response_type"); rt {
	case "code":
	case "":
		return nil, errInvalidRequest("response_type is required")
	default:
		return nil, &oauthError{Code: "unsupported_response_type", Description: "only response_type=code is supported"}
	}
	if rm := params.Get("response_mode"); rm != "" && rm != "query" {
		return nil, errInvalidRequest("only response_mode=query is supported")
	}
	scopes := strings.Fields(params.Get("scope"))
	if !slices.Contains(scopes, "openid") {
		return nil, &oauthError{Code: "invalid_scope", Description: "the openid scope is required"}
	}
	// Scopes the client may not have are dropped (RFC 6749 §3.3).
	allowed := p.allowedScopes(client)
	var granted []string
	for _, s := range scopes {
		if (s == "openid" || slices.Contains(allowed, s)) && !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	req := &authRequest{
		Scopes:    granted,
		State:     params.Get("state"),
		Nonce:     params.Get("nonce"),
		LoginHint: params.Get("login_hint"),
		UILocales: params.Get("ui_locales"),
		AcrValues: strings.Fields(params.Get("acr_values")),
	}

	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return nil, errInvalidRequest("code_challenge_method without code_challenge")
	case challenge == "" && client.Public:
		return nil, errInvalidRequest("PKCE is required for public clients: send code_challenge with code_challenge_method=S256")
	case challenge != "" && method == "plain":
		return nil, errInvalidRequest("code_challenge_method plain is not allowed; use S256")
	case challenge != "" && method != "S256":
		return nil, errInvalidRequest("code_challenge_method must be S256")
	case challenge != "" && !pkceChallenge.MatchString(challenge):
		return nil, errInvalidRequest("code_challenge is malformed")
	}
	req.Challenge = challenge

	if raw := params.Get("claims"); raw != "" {
		values, essential, err := acrFromClaims(raw)
		if err != nil {
			return nil, errInvalidRequest("claims: " + err.Error())
		}
		for _, v := range values {
			if !slices.Contains(req.AcrValues, v) {
				req.AcrValues = append(req.AcrValues, v)
			}
		}
		req.EssentialACR = essential
	}
	for _, v := range strings.Fields(params.Get("prompt")) {
		switch v {
		case "none", "login", "consent", "select_account":
			if !slices.Contains(req.Prompt, v) {
				req.Prompt = append(req.Prompt, v)
			}
		default:
			return nil, errInvalidRequest("unsupported prompt value " + strconv.Quote(v))
		}
	}
	if req.prompt("none") && len(req.Prompt) > 1 {
		return nil, errInvalidRequest("prompt=none cannot be combined with other values")
	}
	if ma := params.Get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 32)
		if err != nil || n < 0 {
			return nil, errInvalidRequest("max_age must be a non-negative number of seconds")
		}
		d := time.Duration(n) * time.Second
		req.MaxAge = &d
	}
	if req.prompt("none") && req.forceLogin() {
		return nil, &oauthError{Code: "login_required", Description: "max_age=0 requires a fresh sign-in"}
	}
	return req, nil
}

// single returns the one value of a parameter; repeating it is an error.
func single(v url.Values, key string) (string, error) {
	switch vs := v[key]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", errors.New(key + " is repeated")
	}
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
	u, err := p.cfg.Users.Get(ctx, s.Subject)
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
	if len(sealed) > maxQueryBytes || p.cfg.Sessions.Open(purposeAuthReq, sealed, &req) != nil ||
		req.Browser == "" || req.Browser != p.cfg.Sessions.BrowserID(w, r) {
		p.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in request has expired or belongs to another browser. Go back to the application and start again.")
		return
	}
	switch r.URL.Query().Get("choose") {
	case "other":
		// Another account: a fresh login, whoever it turns out to be.
		req.Prompt = append(slices.DeleteFunc(req.Prompt, func(v string) bool { return v == "select_account" }), "login")
		req.StartedAt = p.cfg.Sessions.Now().Truncate(time.Second)
		p.startChain(w, r, &req, p.clientName(ctx, req.ClientID))
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
				p.startChain(w, r, &req, p.clientName(ctx, req.ClientID))
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
		p.redirectError(w, r, req.RedirectURI, req.State, &oauthError{Code: "login_required", Description: "sign-in was not completed"})
		return
	}
	out, err := p.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, req.AcrValues, req.since())
	if err != nil {
		p.serverErrorPage(w, "evaluating session", err)
		return
	}
	if !out.Done {
		p.redirectError(w, r, req.RedirectURI, req.State, &oauthError{Code: "access_denied", Description: "authentication was not completed"})
		return
	}
	// One code per authorization request: the resume URL cannot be
	// replayed (the browser is signed in by now, so this write is not
	// one an unauthenticated client can cause).
	if err := p.cfg.Store.Create(ctx, keyAuthDone+req.ID, []byte{1}, authReqTTL); errors.Is(err, store.ErrExists) {
		p.errorPage(w, http.StatusBadRequest, "Sign-in already completed", "This sign-in request was already completed. Go back to the application.")
		return
	} else if err != nil {
		p.serverErrorPage(w, "completing authorization request", err)
		return
	}
	p.newBrowserState(w, r) // a sign-in changes the OP browser state
	p.issueCode(w, r, &req, s, user, out)
}

// clientName is the name shown for a client id.
func (p *Provider) clientName(ctx context.Context, id string) string {
	if c, err := p.cfg.Clients.Get(ctx, id); err == nil {
		return c.DisplayName()
	}
	return id
}

// issueCode ends a successful authorization: one-time code, recorded in
// the session for logout, sent to the client with state and iss.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, req *authRequest, s *session.Session, user users.User, out chain.Outcome) {
	ctx := r.Context()
	if req.EssentialACR && !out.Satisfied {
		p.redirectError(w, r, req.RedirectURI, req.State, &oauthError{Code: "access_denied",
			Description: "the essential acr (" + strings.Join(req.AcrValues, " ") + ") could not be reached"})
		return
	}
	// The client is recorded in the session first (for logout), and only
	// while the session is live: a logout that came first is not undone.
	_, err := p.cfg.Sessions.Modify(ctx, w, s.ID, func(s *session.Session) error {
		s.AddClient(req.ClientID)
		return nil
	})
	if errors.Is(err, session.ErrNoSession) {
		p.redirectError(w, r, req.RedirectURI, req.State, &oauthError{Code: "login_required", Description: "the sign-in session has ended"})
		return
	} else if err != nil {
		p.serverErrorPage(w, "saving session", err)
		return
	}
	now := p.cfg.Sessions.Now()
	code := randomToken()
	rec := codeRecord{
		grant: grant{ClientID: req.ClientID, Subject: user.Subject, Scopes: req.Scopes, SID: s.ID,
			AuthTime: out.AuthTime, ACR: out.ACR, AMR: out.AMR, Levels: out.Levels},
		RedirectURI: req.RedirectURI, Nonce: req.Nonce, Challenge: req.Challenge,
		Expires: now.Add(p.cfg.CodeTTL),
	}
	b, _ := json.Marshal(rec)
	if err := p.cfg.Store.Set(ctx, hashKey(keyCode, code), b, max(codeRecordTTL, p.cfg.CodeTTL)); err != nil {
		p.serverErrorPage(w, "saving code", err)
		return
	}
	q := url.Values{"code": {code}, "iss": {p.cfg.Issuer},
		"session_state": {SessionState(req.ClientID, originOf(req.RedirectURI), p.browserState(w, r), randomToken()[:16])}}
	if req.State != "" {
		q.Set("state", req.State)
	}
	noStore(w)
	http.Redirect(w, r, appendQuery(req.RedirectURI, q), http.StatusFound)
}

func (p *Provider) serverErrorPage(w http.ResponseWriter, what string, err error) {
	p.cfg.Logger.Error("gatehouse provider: "+what, "error", err)
	p.errorPage(w, http.StatusInternalServerError, "Something went wrong", "The sign-in service could not complete the request. Please try again in a moment.")
}

// acrFromClaims reads the acr request of the claims parameter (OIDC Core
// §5.5, §5.5.1.1): {"id_token":{"acr":{"essential":true,"values":["2"]}}}
// and the same under "userinfo".
func acrFromClaims(raw string) (values []string, essential bool, err error) {
	var c map[string]map[string]*struct {
		Essential bool     `json:"essential"`
		Value     *string  `json:"value"`
		Values    []string `json:"values"`
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return nil, false, errors.New("not a JSON object of claim requests")
	}
	for _, member := range []string{"id_token", "userinfo"} {
		acr := c[member]["acr"]
		if acr == nil {
			continue
		}
		essential = essential || acr.Essential
		if acr.Value != nil {
			values = append(values, *acr.Value)
		}
		values = append(values, acr.Values...)
	}
	return values, essential, nil
}
