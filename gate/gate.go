package gate

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Reserved paths on every protected host.
const (
	PathPrefix   = "/.gatehouse/"
	PathCallback = "/.gatehouse/callback"
	PathLogin    = "/.gatehouse/login"
	PathLogout   = "/.gatehouse/logout"
	PathVerify   = "/.gatehouse/verify"
	// PathBackchannel receives back-channel logout tokens from the
	// provider (register it as the gate client's backchannel_logout_uri).
	PathBackchannel = "/.gatehouse/backchannel-logout"
	PathStatic      = "/.gatehouse/static/"
	staticPrefix    = "/.gatehouse/static"
)

// Config configures a Gate.
type Config struct {
	// Issuer, ClientID, ClientSecret: the OpenID provider and this gate's
	// registration there. ClientSecret is empty for a public client.
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes requested; default openid profile email groups.
	Scopes []string
	// HTTPClient talks to the provider (for an in-process provider, a
	// client whose transport serves it directly).
	HTTPClient *http.Client
	// Store keeps gate sessions and pending logins.
	Store store.Store
	// Cookies binds pending logins to the browser and knows whether
	// cookies are Secure.
	Cookies *session.Manager
	// Hosts the gate may serve (exact names or "*.example.com"), without
	// port. Empty: whatever reaches it (the caller has matched hosts).
	Hosts []string
	// Policy of this route.
	Policy Policy
	// Headers sent upstream.
	Headers Headers
	// SessionLifetime bounds a gate session. Default 12h.
	SessionLifetime time.Duration
	// CacheTTL bounds how long a cached session is trusted without a store
	// read (and a user refresh). Default 30s.
	CacheTTL time.Duration
	// Refresh, when set, re-reads the user behind s (groups, disabled...)
	// when a cache entry is renewed. It returns ErrUserGone when the user
	// no longer exists.
	Refresh func(ctx context.Context, s *Session) error
	// Register, when set, makes sure redirectURI is registered for
	// ClientID (automatic registration with a local provider).
	Register func(ctx context.Context, redirectURI string) error
	// Sign, when set with Headers.Assertion, signs the assertion JWT.
	Sign func(claims map[string]any) (string, error)
	// ForwardAuth makes the gate answer /.gatehouse/verify for nginx
	// auth_request, Traefik ForwardAuth and Caddy forward_auth.
	ForwardAuth bool
	Now         func() time.Time
	Logger      *slog.Logger
}

// ErrUserGone: the session's user was deleted.
var ErrUserGone = errors.New("user no longer exists")

// Session is a gate session: who is signed in on one protected host.
type Session struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	Subject  string    `json:"sub"`
	SID      string    `json:"sid,omitempty"`
	Username string    `json:"username"`
	Email    string    `json:"email,omitempty"`
	Name     string    `json:"name,omitempty"`
	Groups   []string  `json:"groups,omitempty"`
	ACR      string    `json:"acr,omitempty"`
	Levels   []string  `json:"levels,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	AuthTime time.Time `json:"auth_time"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Disabled bool      `json:"disabled,omitempty"`
	// Origin is scheme://host of the protected site.
	Origin string `json:"origin,omitempty"`
	// IDToken is kept as the id_token_hint for logout at the provider.
	IDToken string `json:"id_token,omitempty"`
}

// Gate is one gate instance (one route's policy).
type Gate struct {
	cfg      Config
	reserved []string
	cookies  *cookieCodec
	cache    *cache

	mu       sync.Mutex
	provider *oidc.Provider
	endSess  string
	verifier *oidc.IDTokenVerifier
	regd     sync.Map // redirect URIs known registered
}

// New returns a gate for cfg.
func New(ctx context.Context, cfg Config) (*Gate, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("gate: issuer and client id are required")
	}
	if cfg.Store == nil || cfg.Cookies == nil {
		return nil, errors.New("gate: Store and Cookies are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups"}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 12 * time.Hour
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cc, err := newCookieCodec(ctx, cfg.Store, cfg.Cookies.Secure())
	if err != nil {
		return nil, err
	}
	return &Gate{cfg: cfg, reserved: cfg.Headers.reserved(), cookies: cc, cache: sharedCache(cfg.Store)}, nil
}

// Check runs the gate. When it returns handled, it has written the
// response (a redirect, a page, an error) and the request must go no
// further. Otherwise the request may pass: client-sent identity headers
// are gone, and the user's are set (s is nil on a bypassed path).
func (g *Gate) Check(w http.ResponseWriter, r *http.Request) (s *Session, handled bool) {
	strip(r.Header, g.reserved)
	if strings.HasPrefix(r.URL.Path, PathPrefix) {
		g.endpoint(w, r)
		return nil, true
	}
	if !g.hostAllowed(r.Host) {
		g.page(w, http.StatusMisdirectedRequest, "Unknown site", "This sign-in gate is not configured for this host name.")
		return nil, true
	}
	if g.cfg.Policy.Bypassed(r.URL.Path) {
		return nil, false
	}
	return g.enforce(w, r, r, g.cfg.Policy)
}

// enforce applies policy to orig (the request as the user made it) and
// answers on w. With forward auth, r is the proxy's subrequest.
func (g *Gate) enforce(w http.ResponseWriter, r, orig *http.Request, policy Policy) (*Session, bool) {
	s, err := g.session(orig)
	if err != nil {
		g.cfg.Logger.Error("gatehouse gate: loading session", "error", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable",
			"The sign-in service cannot be reached right now. Please try again in a moment.")
		return nil, true
	}
	switch policy.Decide(s, g.cfg.Now()) {
	case Pass:
		g.cfg.Headers.set(r.Header, s)
		if g.cfg.Headers.Assertion != "" && g.cfg.Sign != nil {
			if tok, err := g.assertion(orig, s); err == nil {
				r.Header.Set(g.cfg.Headers.Assertion, tok)
			} else {
				g.cfg.Logger.Error("gatehouse gate: signing assertion", "error", err)
			}
		}
		return s, false
	case Forbidden:
		g.page(w, http.StatusForbidden, "Access denied", "You are signed in, but your account may not open this page.")
		return nil, true
	default:
		g.startLogin(w, r, orig, policy)
		return nil, true
	}
}

func (g *Gate) hostAllowed(hostport string) bool {
	if len(g.cfg.Hosts) == 0 {
		return true
	}
	host := strings.ToLower(hostOnly(hostport))
	for _, h := range g.cfg.Hosts {
		h = strings.ToLower(h)
		if h == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(h, "*."); ok && strings.HasSuffix(host, "."+suffix) &&
			!strings.Contains(strings.TrimSuffix(host, "."+suffix), ".") {
			return true
		}
	}
	return false
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// isNavigation tells a person's page load from an API call.
func isNavigation(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// origin is scheme://host of the request as the browser sees it.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// origin is like the function, but a forward-auth gate sits behind the
// proxy that terminates TLS and trusts its X-Forwarded-Proto.
func (g *Gate) origin(r *http.Request) string {
	if g.cfg.ForwardAuth && r.TLS == nil && r.Header.Get("X-Forwarded-Proto") == "https" {
		return "https://" + r.Host
	}
	return origin(r)
}

// pending is a login in flight, kept under its state.
type pending struct {
	Browser  string        `json:"browser"`
	Host     string        `json:"host"`
	ReturnTo string        `json:"return_to"`
	WasPost  bool          `json:"was_post,omitempty"`
	Nonce    string        `json:"nonce"`
	Verifier string        `json:"verifier"`
	ACR      []string      `json:"acr,omitempty"`
	MaxAge   time.Duration `json:"max_age,omitempty"`
	Redirect string        `json:"redirect_uri"`
}

const (
	keyPending   = "gate-login:"
	pendingTTL   = 15 * time.Minute
	keySession   = "gs:"
	setBySID     = "gs-sid:"
	setBySubject = "gs-sub:"
)

// startLogin sends a browser to the provider, or tells an API client 401.
func (g *Gate) startLogin(w http.ResponseWriter, r, orig *http.Request, policy Policy) {
	loginURL := g.origin(orig) + PathLogin + "?return=" + url.QueryEscape(orig.URL.RequestURI())
	if !isNavigation(orig) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Gatehouse realm=%q, login_url=%q`, hostOnly(orig.Host), loginURL))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "login_required", "login_url": loginURL})
		return
	}
	ret := orig.URL.RequestURI()
	p := pending{ReturnTo: ret, WasPost: orig.Method != http.MethodGet && orig.Method != http.MethodHead,
		ACR: policy.ACR, MaxAge: policy.MaxAge}
	g.redirectToProvider(w, r, orig, p)
}

func (g *Gate) redirectToProvider(w http.ResponseWriter, r, orig *http.Request, p pending) {
	ctx := r.Context()
	prov, err := g.oidcProvider(ctx)
	if err != nil {
		g.cfg.Logger.Error("gatehouse gate: provider discovery", "issuer", g.cfg.Issuer, "error", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable",
			"The sign-in service cannot be reached right now. Please try again in a moment.")
		return
	}
	p.Browser = g.cfg.Cookies.Browser(w, orig)
	p.Host = orig.Host
	p.Nonce = randomString(24)
	p.Verifier = oauth2.GenerateVerifier()
	p.Redirect = g.origin(orig) + PathCallback
	if g.cfg.Register != nil {
		if _, ok := g.regd.Load(p.Redirect); !ok {
			if err := g.cfg.Register(ctx, p.Redirect); err != nil {
				g.cfg.Logger.Error("gatehouse gate: registering redirect URI", "uri", p.Redirect, "error", err)
				g.page(w, http.StatusInternalServerError, "Sign-in is misconfigured", "This site could not be registered with the sign-in service.")
				return
			}
			g.regd.Store(p.Redirect, true)
		}
	}
	state := randomString(32)
	b, _ := json.Marshal(p)
	if err := g.cfg.Store.Set(ctx, keyPending+state, b, pendingTTL); err != nil {
		g.cfg.Logger.Error("gatehouse gate: saving pending login", "error", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "Please try again in a moment.")
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.Verifier), oidc.Nonce(p.Nonce)}
	if len(p.ACR) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(p.ACR, " ")))
	}
	if p.MaxAge > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(int(p.MaxAge/time.Second))))
	}
	http.Redirect(w, orig, g.oauth2Config(prov, p.Redirect).AuthCodeURL(state, opts...), http.StatusFound)
}

func (g *Gate) oauth2Config(prov *oidc.Provider, redirect string) *oauth2.Config {
	ep := prov.Endpoint()
	if g.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: g.cfg.ClientID, ClientSecret: g.cfg.ClientSecret, Endpoint: ep, RedirectURL: redirect, Scopes: g.cfg.Scopes}
}

// oidcProvider discovers the provider once it is reachable.
func (g *Gate) oidcProvider(ctx context.Context) (*oidc.Provider, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.provider != nil {
		return g.provider, nil
	}
	ctx = oidc.ClientContext(context.WithoutCancel(ctx), g.cfg.HTTPClient)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(context.Background(), g.cfg.HTTPClient), g.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&extra)
	g.provider, g.endSess = p, extra.EndSession
	g.verifier = p.Verifier(&oidc.Config{ClientID: g.cfg.ClientID, Now: g.cfg.Now})
	return p, nil
}

func (g *Gate) endpoint(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, PathStatic):
		http.StripPrefix(staticPrefix, web.Static()).ServeHTTP(w, r)
		return
	case r.URL.Path == PathVerify && g.cfg.ForwardAuth:
		// The proxy may call from any address; verify checks the
		// forwarded host itself.
		g.verify(w, r)
	case !g.hostAllowed(r.Host):
		g.page(w, http.StatusMisdirectedRequest, "Unknown site", "This sign-in gate is not configured for this host name.")
	case r.URL.Path == PathCallback:
		g.callback(w, r)
	case r.URL.Path == PathLogin:
		ret, ok := SafeReturn(r.URL.Query().Get("return"))
		if !ok {
			g.page(w, http.StatusBadRequest, "Bad return address", "The address to return to after sign-in must be a page of this site.")
			return
		}
		g.redirectToProvider(w, r, r, pending{ReturnTo: ret, ACR: g.cfg.Policy.ACR, MaxAge: g.cfg.Policy.MaxAge})
	case r.URL.Path == PathLogout:
		g.logout(w, r)
	case r.URL.Path == PathBackchannel:
		g.backchannel(w, r)
	default:
		g.page(w, http.StatusNotFound, "Page not found", "There is nothing at this address.")
	}
}

// SafeReturn accepts only a path on this site: no scheme, no host, no
// protocol-relative "//", no backslashes, no control characters — also
// after percent-decoding.
func SafeReturn(s string) (string, bool) {
	if s == "" {
		return "/", true
	}
	if len(s) > 4096 {
		return "", false
	}
	for _, v := range []string{s, unescapeAll(s)} {
		if !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\") ||
			strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", false
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "", false
	}
	return s, true
}

// unescapeAll percent-decodes repeatedly (double-encoding tricks).
func unescapeAll(s string) string {
	for range 3 {
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return d
		}
		s = d
	}
	return s
}

func (g *Gate) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 128 {
		g.page(w, http.StatusBadRequest, "Sign-in link not valid", "This page is only reached by returning from the sign-in service.")
		return
	}
	b, err := g.cfg.Store.Take(ctx, keyPending+state)
	if errors.Is(err, store.ErrNotFound) {
		g.retryPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in has expired or was already completed.", "/")
		return
	} else if err != nil {
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "Please try again in a moment.")
		return
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		g.page(w, http.StatusBadRequest, "Sign-in link not valid", "The sign-in state could not be read.")
		return
	}
	if p.Host != r.Host || subtle.ConstantTimeCompare([]byte(p.Browser), []byte(g.cfg.Cookies.Browser(w, r))) != 1 {
		g.retryPage(w, http.StatusBadRequest, "Sign-in started elsewhere", "This sign-in was started in another browser or on another site.", "/")
		return
	}
	if iss := q.Get("iss"); iss != "" && iss != g.cfg.Issuer {
		g.page(w, http.StatusBadRequest, "Sign-in failed", "The answer came from an unexpected sign-in service.")
		return
	}
	if e := q.Get("error"); e != "" {
		g.retryPage(w, http.StatusForbidden, "Sign-in not completed", "The sign-in service answered: "+e+".", p.ReturnTo)
		return
	}
	prov, err := g.oidcProvider(ctx)
	if err != nil {
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "Please try again in a moment.")
		return
	}
	octx := oidc.ClientContext(ctx, g.cfg.HTTPClient)
	tok, err := g.oauth2Config(prov, p.Redirect).Exchange(octx, q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		g.cfg.Logger.Warn("gatehouse gate: code exchange failed", "error", err)
		g.retryPage(w, http.StatusBadGateway, "Sign-in failed", "The sign-in could not be completed.", p.ReturnTo)
		return
	}
	s, err := g.sessionFromToken(octx, tok, p.Nonce)
	if err != nil {
		g.cfg.Logger.Warn("gatehouse gate: ID token rejected", "error", err)
		g.retryPage(w, http.StatusBadGateway, "Sign-in failed", "The sign-in service's answer could not be verified.", p.ReturnTo)
		return
	}
	if len(p.ACR) > 0 && !slices.ContainsFunc(p.ACR, func(l string) bool { return slices.Contains(s.Levels, l) }) {
		g.page(w, http.StatusForbidden, "Stronger sign-in needed",
			"This page needs a stronger sign-in (level "+strings.Join(p.ACR, " or ")+") than your account could complete.")
		return
	}
	s.Host, s.Origin = r.Host, g.origin(r)
	if old, _ := g.cookies.decode(r, r.Host); old != "" {
		g.drop(ctx, old)
	}
	if err := g.save(ctx, s); err != nil {
		g.cfg.Logger.Error("gatehouse gate: saving session", "error", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "Please try again in a moment.")
		return
	}
	g.cookies.set(w, r.Host, s.ID, s.Expires)
	if p.WasPost {
		web.Render(w, http.StatusOK, "notice.html", web.Page{Title: "Signed in — please submit again", Static: staticPrefix,
			Message: "You had to sign in while sending a form, so it was not sent. Go back to the page and submit it again.",
			Data:    notice{Link: p.ReturnTo, LinkText: "Back to the page"}})
		return
	}
	ret, ok := SafeReturn(p.ReturnTo)
	if !ok {
		ret = "/"
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

// sessionFromToken verifies the ID token and builds a session from it.
func (g *Gate) sessionFromToken(ctx context.Context, tok *oauth2.Token, nonce string) (*Session, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("no id_token in the token response")
	}
	idt, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("nonce does not match")
	}
	var c struct {
		SID       string   `json:"sid"`
		Username  string   `json:"preferred_username"`
		Email     string   `json:"email"`
		Name      string   `json:"name"`
		Groups    []string `json:"groups"`
		ACR       string   `json:"acr"`
		ACRLevels []string `json:"acr_levels"`
		AMR       []string `json:"amr"`
		AuthTime  int64    `json:"auth_time"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, err
	}
	now := g.cfg.Now()
	s := &Session{
		ID: randomString(32), Subject: idt.Subject, SID: c.SID, Username: c.Username, Email: c.Email, Name: c.Name,
		Groups: c.Groups, ACR: c.ACR, Levels: c.ACRLevels, AMR: c.AMR, AuthTime: time.Unix(c.AuthTime, 0),
		Created: now, Expires: now.Add(g.cfg.SessionLifetime),
	}
	if s.Username == "" {
		s.Username = idt.Subject
	}
	s.IDToken = raw
	if len(s.Levels) == 0 && s.ACR != "" {
		s.Levels = []string{s.ACR}
	}
	if c.AuthTime == 0 {
		s.AuthTime = idt.IssuedAt
	}
	return s, nil
}

func (g *Gate) save(ctx context.Context, s *Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ttl := s.Expires.Sub(g.cfg.Now())
	if err := g.cfg.Store.Set(ctx, keySession+s.ID, b, ttl); err != nil {
		return err
	}
	if s.SID != "" {
		if err := g.cfg.Store.SetAdd(ctx, setBySID+s.SID, s.ID); err != nil {
			return err
		}
	}
	return g.cfg.Store.SetAdd(ctx, setBySubject+s.Subject, s.ID)
}

// drop ends a gate session everywhere.
func (g *Gate) drop(ctx context.Context, id string) {
	_ = g.cfg.Store.Delete(ctx, keySession+id)
	g.cache.forget(ctx, id)
}

func (g *Gate) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var idToken string
	if id, _ := g.cookies.decode(r, r.Host); id != "" {
		if s, _ := g.load(ctx, id); s != nil {
			idToken = s.IDToken
		}
		g.drop(ctx, id)
	}
	g.cookies.clear(w)
	ret, ok := SafeReturn(r.URL.Query().Get("return"))
	if !ok {
		ret = "/"
	}
	// Signing out here signs out everywhere: on to the provider's
	// end-session endpoint, which ends the SSO session and tells every
	// other application and gate.
	if _, err := g.oidcProvider(ctx); err == nil && g.endSess != "" {
		q := url.Values{"client_id": {g.cfg.ClientID}, "post_logout_redirect_uri": {g.origin(r) + "/"}}
		if idToken != "" {
			q.Set("id_token_hint", idToken)
		}
		http.Redirect(w, r, g.endSess+"?"+q.Encode(), http.StatusFound)
		return
	}
	web.Render(w, http.StatusOK, "notice.html", web.Page{Title: "Signed out", Static: staticPrefix,
		Message: "You are signed out of this site.", Data: notice{Link: ret, LinkText: "Continue"}})
}

func (g *Gate) page(w http.ResponseWriter, status int, title, detail string) {
	web.Error(w, staticPrefix, status, title, detail)
}

func (g *Gate) retryPage(w http.ResponseWriter, status int, title, detail, ret string) {
	ret, ok := SafeReturn(ret)
	if !ok {
		ret = "/"
	}
	web.Render(w, status, "notice.html", web.Page{Title: title, Static: staticPrefix, Message: detail,
		Data: notice{Link: PathLogin + "?return=" + url.QueryEscape(ret), LinkText: "Sign in again"}})
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// notice is the data of web's notice.html.
type notice struct{ Text, Link, LinkText string }

// SetHosts sets the host names the gate serves (see Config.Hosts).
func (g *Gate) SetHosts(hosts []string) { g.cfg.Hosts = hosts }

// Serves reports whether the gate serves host (host[:port]).
func (g *Gate) Serves(host string) bool { return g.hostAllowed(host) }
