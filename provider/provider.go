package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/metrics"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Config is everything a Provider needs. Store, Users, Clients, Keys,
// Sessions and Chain are shared with the rest of Gatehouse.
type Config struct {
	// Issuer is the provider's issuer URL: scheme, host and an optional
	// path, no query, no trailing slash. Every endpoint hangs below it.
	Issuer   string
	Store    store.Store
	Users    *users.Directory
	Clients  *Clients
	Keys     *Keys
	Sessions *session.Manager
	Chain    *chain.Engine
	// Logout ends sessions; the provider subscribes to it to revoke
	// tokens and notify clients.
	Logout *logout.Service
	// Regulate, when set, slows and bans guessing of client secrets.
	Regulate *regulate.Limiter
	// Audit takes security events (unknown clients, bad redirect URIs,
	// bad client secrets, replayed codes).
	Audit *audit.Log
	// HSTS, when set, is the Strict-Transport-Security header of every
	// response (an https issuer only).
	HSTS string
	// AccessTokenTTL is the life of an access token. Default 15m.
	AccessTokenTTL time.Duration
	// IDTokenTTL is the life of an ID token. Default 15m.
	IDTokenTTL time.Duration
	// CodeTTL is how long an authorization code can be redeemed.
	// Default 60s (RFC 6749 §4.1.2 recommends at most 10 minutes).
	CodeTTL time.Duration
	// RefreshTokenIdle is how long a refresh token lives unused (each use
	// rotates it and starts again). Default 30 days.
	RefreshTokenIdle time.Duration
	// RefreshTokenLifetime is how long a refresh family lives however
	// often it is used; then the person signs in again. Default 90 days.
	RefreshTokenLifetime time.Duration
	// DeviceCodeTTL is how long a device code and its user code wait
	// for the person (RFC 8628 expires_in). Default 10m.
	DeviceCodeTTL time.Duration
	// DevicePollInterval is the least time a device waits between two
	// polls of the token endpoint (RFC 8628 interval), in whole seconds.
	// Default 5s.
	DevicePollInterval time.Duration
	// Scopes are admin-defined scopes besides the built-in ones.
	Scopes []Scope
	// Registration is the dynamic client registration policy (OIDC
	// Dynamic Client Registration, RFC 7591 and RFC 7592):
	// RegistrationOff (default), RegistrationOpen or
	// RegistrationInitialAccessToken.
	Registration string
	// RegistrationsPerIP bounds the registration requests of one client
	// address (an IPv6 /64) per hour (default 20); MaxRegisteredClients
	// the clients registered in all (default 10000).
	RegistrationsPerIP   int
	MaxRegisteredClients int
	// RegistrationPrivateNetworks lets what registered clients name
	// (jwks_uri, request_uris, sector_identifier_uri,
	// backchannel_logout_uri) be reached on private addresses. Off (the
	// default), the provider reaches only public addresses for them on
	// an https issuer.
	RegistrationPrivateNetworks bool
	// HTTPClient makes the provider's own requests (a registering
	// client's sector_identifier_uri). Default: a 5s timeout, no
	// redirects followed.
	HTTPClient *http.Client
	// RequirePAR: the authorization endpoint takes only requests pushed
	// to the PAR endpoint first (RFC 9126 §5), from every client.
	RequirePAR bool
	// Metrics counts token grants (nil: none).
	Metrics *metrics.Set
	// Console, when set, is the admin console, served at /admin below
	// the issuer (package console); it checks its own access.
	Console http.Handler

	Logger *slog.Logger
}

// Paths of the provider's endpoints, below the issuer's path.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathJWKS       = "/jwks"
	PathAuthorize  = "/authorize"
	PathResume     = "/authorize/resume"
	PathToken      = "/token"
	PathUserinfo   = "/userinfo"
	PathLogin      = "/login"
	PathEndSession = "/logout"
	PathStatic     = "/static/"
	PathConsole    = "/admin"
)

// Provider is the OpenID Connect provider. It is an http.Handler for every
// path below the issuer; it answers 404 for the rest.
type Provider struct {
	cfg    Config
	prefix string
	mux    *http.ServeMux
	static http.Handler
	// tokens is the repository of everything handed out.
	tokens *tokens
	// credentialLocks serialise the checks of one client's credentials.
	credentialLocks credentialLocks
	scopes          scopeSet
	pairwiseSalt    []byte
	// remote fetches and caches what clients publish (jwks_uri,
	// request_uri).
	remote *remoteFetcher
}

// PathPrefix returns the URL path of issuer ("" for a host-only issuer).
func PathPrefix(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("issuer %q: %v", issuer, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("issuer %q must be an absolute http(s) URL", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("issuer %q must not have a query, fragment or user info", issuer)
	}
	if strings.HasSuffix(u.Path, "/") {
		return "", fmt.Errorf("issuer %q must not end with a slash", issuer)
	}
	return u.Path, nil
}

// New returns a Provider for cfg.
func New(cfg Config) (*Provider, error) {
	prefix, err := PathPrefix(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Users == nil || cfg.Clients == nil || cfg.Keys == nil || cfg.Sessions == nil || cfg.Chain == nil || cfg.Logout == nil {
		return nil, errors.New("provider: Store, Users, Clients, Keys, Sessions, Chain and Logout are required")
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = 15 * time.Minute
	}
	if cfg.IDTokenTTL <= 0 {
		cfg.IDTokenTTL = 15 * time.Minute
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 60 * time.Second
	}
	if cfg.RefreshTokenIdle <= 0 {
		cfg.RefreshTokenIdle = 30 * 24 * time.Hour
	}
	if cfg.RefreshTokenLifetime <= 0 {
		cfg.RefreshTokenLifetime = 90 * 24 * time.Hour
	}
	if cfg.DeviceCodeTTL <= 0 {
		cfg.DeviceCodeTTL = 10 * time.Minute
	}
	if cfg.DevicePollInterval <= 0 {
		cfg.DevicePollInterval = 5 * time.Second
	}
	cfg.DevicePollInterval = (cfg.DevicePollInterval + time.Second - 1).Truncate(time.Second)
	if cfg.DevicePollInterval >= cfg.DeviceCodeTTL {
		return nil, fmt.Errorf("provider: the device poll interval (%v) must be shorter than the device code lifetime (%v)", cfg.DevicePollInterval, cfg.DeviceCodeTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	scopes, err := newScopeSet(cfg.Scopes)
	if err != nil {
		return nil, err
	}
	salt, err := loadPairwiseSalt(context.Background(), cfg.Store)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.Issuer, "https://") {
		cfg.HSTS = "" // browsers ignore it over http, and it would pin localhost
	}
	p := &Provider{cfg: cfg, prefix: prefix, mux: http.NewServeMux(), scopes: scopes, pairwiseSalt: salt,
		tokens: &tokens{st: cfg.Store, now: cfg.Sessions.Now}, remote: newRemoteFetcher(cfg.Sessions.Now)}
	cfg.Logout.Subscribe(p)
	p.static = http.StripPrefix(prefix+"/static", web.Static())
	p.mux.HandleFunc(prefix+PathDiscovery, p.discovery)
	p.mux.HandleFunc(PathWebFinger, p.webfinger)
	p.mux.HandleFunc(prefix+PathJWKS, p.jwks)
	p.mux.HandleFunc(prefix+PathAuthorize, p.authorize)
	p.mux.HandleFunc(prefix+PathResume, p.resume)
	p.mux.HandleFunc(prefix+PathConsent, p.consent)
	p.mux.HandleFunc(prefix+PathToken, p.token)
	p.mux.HandleFunc(prefix+PathUserinfo, p.userinfo)
	p.mux.HandleFunc(prefix+PathIntrospect, p.introspect)
	p.mux.HandleFunc(prefix+PathRevoke, p.revoke)
	p.mux.HandleFunc(prefix+PathDeviceAuthorization, p.deviceAuthorization)
	p.mux.HandleFunc(prefix+PathDevice, p.devicePage)
	p.mux.HandleFunc(prefix+PathPAR, p.par)
	p.mux.Handle(prefix+PathLogin, cfg.Chain)
	p.mux.Handle(prefix+PathLogin+"/", cfg.Chain) // the chain modules' own endpoints
	p.mux.HandleFunc(prefix+PathEndSession, p.endSession)
	p.mux.HandleFunc(prefix+PathAccount, p.account)
	p.mux.HandleFunc(prefix+PathAccountAdd, p.accountAdd)
	p.mux.HandleFunc(prefix+PathCheckSession, p.checkSession)
	p.mux.HandleFunc(prefix+PathHealth, p.health)
	if err := p.setupRegistration(); err != nil {
		return nil, err
	}
	p.mux.Handle(prefix+PathStatic, p.static)
	if cfg.Console != nil {
		p.mux.Handle(prefix+PathConsole, cfg.Console)
		p.mux.Handle(prefix+PathConsole+"/", cfg.Console)
	}
	p.mux.HandleFunc("/", p.home)
	return p, nil
}

// LoginPath and StaticPath are where the chain's pages and the assets
// live for an issuer; the chain engine must be built with them.
func LoginPath(issuer string) string  { pfx, _ := PathPrefix(issuer); return pfx + PathLogin }
func StaticPath(issuer string) string { pfx, _ := PathPrefix(issuer); return pfx + "/static" }

func (p *Provider) staticPath() string { return p.prefix + "/static" }

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Endpoint returns the absolute URL of one of the Path constants.
func (p *Provider) Endpoint(path string) string { return p.cfg.Issuer + path }

// ServeHTTP routes the request to an endpoint.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.cfg.HSTS != "" {
		w.Header().Set("Strict-Transport-Security", p.cfg.HSTS)
	}
	// Pages are in the browser's language (or the request's ui_locales).
	p.mux.ServeHTTP(web.Localize(w, r), r)
}

// errorPage shows an error to the person at the browser: used when the
// client cannot be trusted with a redirect.
func (p *Provider) errorPage(w http.ResponseWriter, status int, title, detail string) {
	web.Error(w, p.staticPath(), status, title, detail)
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
