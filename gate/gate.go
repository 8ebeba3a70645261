package gate

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-idp/gatehouse/browser"
	"github.com/gatehouse-idp/gatehouse/logout"
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
	// Store keeps gate sessions.
	Store store.Store
	// Cookies holds the cookie keys and policy; it binds pending logins
	// to the browser.
	Cookies *browser.State
	// Queue takes the upstream logout notice when this gate ends one of
	// its sessions by itself (its own /.gatehouse/logout).
	Queue *logout.Queue
	// Policy of this route.
	Policy Policy
	// SessionLifetime bounds a gate session. Default 12h.
	SessionLifetime time.Duration
	// CacheTTL bounds how long a cached session is trusted without a store
	// read (and a user refresh). Default 30s.
	CacheTTL time.Duration
	// Refresh, when set, re-reads the user behind s (groups, disabled...)
	// when a cache entry is renewed. It returns ErrUserGone when the user
	// no longer exists.
	Refresh func(ctx context.Context, s *Session) error
	// Sign, when set with Headers.Assertion, signs the assertion JWT.
	Sign func(claims map[string]any) (string, error)
	// ForwardAuth makes the gate answer /.gatehouse/verify for nginx
	// auth_request, Traefik ForwardAuth and Caddy forward_auth.
	ForwardAuth bool
	// HSTS, when set, is the Strict-Transport-Security header of every
	// response on an https origin.
	HSTS   string
	Now    func() time.Time
	Logger *slog.Logger
	// Observe, when set, is told the outcome of every request the gate
	// decides: pass, login, step_up, forbidden, bypass, bad_path,
	// unknown_site or unavailable (metrics).
	Observe func(result string)
}

// Site is what a gate learns of its site once the server configuration
// is known (Bind): where it is served, and the settings it shares with
// the site's other gates.
type Site struct {
	// Origins (scheme://host[:port]) the gate serves; exact, no wildcard.
	Origins []string
	// Headers sent upstream (a route gate inherits the site gate's).
	Headers Headers
	// UpstreamLogout is the site's logout hook, or "".
	UpstreamLogout string
	// Strip are more header names to remove from every request: those
	// other gates send upstream (a route gate's own names must not be
	// forgeable on the rest of the site).
	Strip []string
}

// bound is a gate's Site, ready for the hot path; immutable.
type bound struct {
	Site
	origins  map[string]bool
	reserved []string
	// byHost maps a scheme and a Host header in its canonical spelling to
	// the origin: the common case found without building a string.
	byHost map[string]map[string]string
	names  headerNames
}

// ErrUserGone: the session's user was deleted.
var ErrUserGone = errors.New("user no longer exists")

// Session is a gate session: who is signed in on one protected origin.
type Session struct {
	ID       string    `json:"id"`
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
	// Origin is the canonical scheme://host[:port] of the protected site.
	Origin string `json:"origin"`
	// UpstreamLogout is the hook that hears when this session ends.
	UpstreamLogout string `json:"upstream_logout,omitempty"`
	// IDToken is kept as the id_token_hint for logout at the provider.
	IDToken string `json:"id_token,omitempty"`
	// joined is Groups joined with commas, set when the session enters
	// the cache (read-only from then on).
	joined string
}

// groups is the value of the groups header.
func (s *Session) groups() string {
	if s.joined != "" || len(s.Groups) == 0 {
		return s.joined
	}
	return strings.Join(s.Groups, ",")
}

// Gate is one gate instance (one route's policy).
type Gate struct {
	cfg     Config
	cookies *cookieCodec
	cache   *cache
	site    atomic.Pointer[bound]

	mu       sync.Mutex
	provider *oidc.Provider
	endSess  string
	verifier *oidc.IDTokenVerifier
}

// New returns a gate for cfg. It serves nothing until Bind.
func New(ctx context.Context, cfg Config) (*Gate, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("gate: issuer and client id are required")
	}
	if cfg.Store == nil || cfg.Cookies == nil || cfg.Queue == nil {
		return nil, errors.New("gate: Store, Cookies and Queue are required")
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
	return &Gate{cfg: cfg, cookies: newCookieCodec(cfg.Cookies), cache: sharedCache(cfg.Store)}, nil
}

// Bind sets the origins the gate serves and its site settings. Until it
// is called the gate answers 503 to everything (fail closed while Caddy
// starts).
func (g *Gate) Bind(s Site) error {
	if len(s.Origins) == 0 {
		return errors.New("gate: no origins to serve")
	}
	b := &bound{Site: s, origins: map[string]bool{}, reserved: s.Headers.reserved()}
	for _, n := range s.Strip {
		if n != "" && !slices.ContainsFunc(b.reserved, func(o string) bool { return sameHeader(o, n) }) {
			b.reserved = append(b.reserved, n)
		}
	}
	for _, o := range s.Origins {
		c, err := CanonicalOrigin(o)
		if err != nil {
			return err
		}
		b.origins[c] = true
	}
	b.Origins = nil
	b.byHost = map[string]map[string]string{"http": {}, "https": {}}
	for o := range b.origins {
		b.Origins = append(b.Origins, o)
		scheme, host, _ := strings.Cut(o, "://")
		b.byHost[scheme][host] = o
	}
	b.names = s.Headers.names()
	slices.Sort(b.Origins)
	g.site.Store(b)
	return nil
}

// Origins are the origins the gate serves (after Bind).
func (g *Gate) Origins() []string {
	if b := g.site.Load(); b != nil {
		return b.Origins
	}
	return nil
}

// origin returns the canonical origin of r if the gate serves it.
func (b *bound) origin(r *http.Request) (string, bool) {
	if o, ok := b.byHost[requestScheme(r)][r.Host]; ok {
		return o, true
	}
	o, err := requestOrigin(r)
	return o, err == nil && b.origins[o]
}

// Check runs the gate. When it returns handled, it has written the
// response (a redirect, a page, an error) and the request must go no
// further. Otherwise the request may pass: client-sent identity headers
// are gone, and the user's are set (s is nil on a bypassed path).
func (g *Gate) Check(w http.ResponseWriter, r *http.Request) (s *Session, handled bool) {
	// The gate's own pages are in the browser's language (web.Localize),
	// which is wrapped only on the way to a page: a passing request, the
	// common case, does not pay for it.
	b := g.site.Load()
	if b == nil {
		g.observe("unavailable")
		strip(r.Header, DefaultHeaders().reserved())
		g.page(web.Localize(w, r), http.StatusServiceUnavailable, "Starting", "This site is starting. Please try again in a moment.")
		return nil, true
	}
	strip(r.Header, b.reserved)
	p, err := CanonicalPath(r.URL.EscapedPath())
	if err != nil {
		g.observe("bad_path")
		RefusePath(web.Localize(w, r), err)
		return nil, true
	}
	if strings.HasPrefix(p, PathPrefix) {
		g.endpoint(web.Localize(w, r), r, b)
		return nil, true
	}
	origin, ok := b.origin(r)
	if !ok {
		g.observe("unknown_site")
		g.page(web.Localize(w, r), http.StatusMisdirectedRequest, "Unknown site", "This sign-in gate is not configured for this host name and port.")
		return nil, true
	}
	if g.cfg.HSTS != "" && r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", g.cfg.HSTS)
	}
	if g.cfg.Policy.Bypassed(p) {
		g.observe("bypass")
		return nil, false
	}
	return g.enforce(w, r, r, b, origin, &g.cfg.Policy)
}

// enforce applies every policy to orig (the request as the user made it,
// to origin) and answers on w: it passes only when all pass. With
// forward auth, r is the proxy's subrequest.
func (g *Gate) enforce(w http.ResponseWriter, r, orig *http.Request, b *bound, origin string, policies ...*Policy) (*Session, bool) {
	s, err := g.session(orig, origin)
	if err != nil {
		w = web.Localize(w, orig)
		g.cfg.Logger.Error("gatehouse gate: loading session", "error", err)
		g.observe("unavailable")
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable",
			"The sign-in service cannot be reached right now. Please try again in a moment.")
		return nil, true
	}
	verdict, need := combine(s, g.cfg.Now(), policies)
	g.observe(verdict.result())
	switch verdict {
	case Pass:
		b.names.set(r.Header, s)
		if b.Headers.Assertion != "" && g.cfg.Sign != nil {
			if tok, err := g.assertion(origin, s); err == nil {
				r.Header.Set(b.Headers.Assertion, tok)
			} else {
				g.cfg.Logger.Error("gatehouse gate: signing assertion", "error", err)
			}
		}
		return s, false
	case Forbidden:
		g.page(web.Localize(w, orig), http.StatusForbidden, "Access denied", "You are signed in, but your account may not open this page.")
		return nil, true
	default:
		g.startLogin(web.Localize(w, orig), r, orig, b, origin, need)
		return nil, true
	}
}

// combine decides s against every policy: Forbidden if any forbids, else
// a login for the first one not satisfied (asking its levels, and the
// shortest max_age of all), else Pass.
func combine(s *Session, now time.Time, policies []*Policy) (Verdict, Policy) {
	verdict, need := Pass, Policy{}
	if len(policies) == 1 && policies[0].Decide(s, now) == Pass {
		return Pass, need // the common case, without copying the policy
	}
	for _, p := range policies {
		switch v := p.Decide(s, now); v {
		case Forbidden:
			return Forbidden, *p
		case Login, StepUp:
			if verdict == Pass {
				verdict, need = v, *p
			}
		}
	}
	for _, p := range policies {
		if p.MaxAge > 0 && (need.MaxAge == 0 || p.MaxAge < need.MaxAge) {
			need.MaxAge = p.MaxAge
		}
	}
	return verdict, need
}

// observe tells the configured observer an outcome.
func (g *Gate) observe(result string) {
	if g.cfg.Observe != nil {
		g.cfg.Observe(result)
	}
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

func (g *Gate) endpoint(w http.ResponseWriter, r *http.Request, b *bound) {
	if strings.HasPrefix(r.URL.Path, PathStatic) {
		http.StripPrefix(staticPrefix, web.Static()).ServeHTTP(w, r)
		return
	}
	if r.URL.Path == PathVerify && g.cfg.ForwardAuth {
		// The proxy may call from any address; verify checks the
		// forwarded origin itself.
		g.verify(w, r, b)
		return
	}
	if g.cfg.ForwardAuth {
		// Behind the proxy that sends /.gatehouse/* here and ended TLS:
		// its X-Forwarded-Proto says the scheme (only the proxy reaches a
		// forward-auth gate).
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			r = r.WithContext(WithScheme(r.Context(), p))
		}
	}
	origin, ok := b.origin(r)
	if !ok {
		g.page(w, http.StatusMisdirectedRequest, "Unknown site", "This sign-in gate is not configured for this host name and port.")
		return
	}
	switch r.URL.Path {
	case PathCallback:
		g.callback(w, r, b, origin)
	case PathLogin:
		ret, ok := SafeReturn(r.URL.Query().Get("return"))
		if !ok {
			g.page(w, http.StatusBadRequest, "Bad return address", "The address to return to after sign-in must be a page of this site.")
			return
		}
		g.redirectToProvider(w, r, origin, pending{ReturnTo: ret, ACR: g.cfg.Policy.ACR, MaxAge: g.cfg.Policy.MaxAge})
	case PathLogout:
		g.logout(w, r, origin)
	case PathBackchannel:
		g.backchannel(w, r)
	default:
		g.page(w, http.StatusNotFound, "Page not found", "There is nothing at this address.")
	}
}

// save stores a new gate session with its indexes in one write.
func (g *Gate) save(ctx context.Context, s *Session) error {
	return saveSession(ctx, g.cfg.Store, s, g.cfg.Now())
}

// RefusePath answers a request whose path is not in its plain form.
func RefusePath(w http.ResponseWriter, err error) {
	web.Error(w, staticPrefix, http.StatusBadRequest, "Bad address", "This address is not in its plain form: "+err.Error()+".")
}

func (g *Gate) page(w http.ResponseWriter, status int, title, detail string) {
	web.Error(w, staticPrefix, status, title, detail)
}

// retryPage shows a problem with a link that starts the sign-in again
// and comes back to ret (only a path of this site).
func (g *Gate) retryPage(w http.ResponseWriter, status int, title, detail, ret string) {
	g.notice(w, status, title, detail, PathLogin+"?return="+url.QueryEscape(safeOrRoot(ret)), "Sign in again")
}

// notice renders the notice page. Its link goes through SafeReturn like
// every URL the gate puts in a page or a Location: only paths of this
// site.
func (g *Gate) notice(w http.ResponseWriter, status int, title, detail, link, linkText string) {
	web.Render(w, status, "notice.html", web.Page{Title: title, Static: staticPrefix, Message: detail,
		Data: notice{Link: safeOrRoot(link), LinkText: linkText}})
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
