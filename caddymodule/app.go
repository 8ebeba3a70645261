// Package caddymodule is the Caddy glue of Gatehouse: the gatehouse app
// (global options), the gatehouse_idp handler, Caddyfile parsing, the
// admin API and the `caddy gatehouse` subcommands. It only wires the
// plain net/http packages (provider, chain, session, store, users).
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/browser"
	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/activation"     // activation module kind
	_ "github.com/gatehouse-idp/gatehouse/chain/magic_link"     // magic_link module kind
	_ "github.com/gatehouse-idp/gatehouse/chain/oidc"           // oidc module kind (remote OpenID providers)
	_ "github.com/gatehouse-idp/gatehouse/chain/password"       // password module kind
	_ "github.com/gatehouse-idp/gatehouse/chain/password_reset" // password_reset module kind
	_ "github.com/gatehouse-idp/gatehouse/chain/registration"   // registration module kind
	_ "github.com/gatehouse-idp/gatehouse/chain/totp"           // totp module kind
	_ "github.com/gatehouse-idp/gatehouse/chain/webauthn"       // webauthn module kind
	"github.com/gatehouse-idp/gatehouse/gate"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/internal/netguard"
	"github.com/gatehouse-idp/gatehouse/linking"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/metrics"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/sets"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/breaker"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
	redisstore "github.com/gatehouse-idp/gatehouse/store/redis"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/users/ldap"
	"github.com/gatehouse-idp/gatehouse/web"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the gatehouse app: it owns the state every Gatehouse handler
// shares — store, keys, users, clients, the chain and the provider.
type App struct {
	// Issuer is the provider's issuer URL, e.g. https://auth.example.com.
	Issuer string `json:"issuer"`
	// Store selects where state lives. Default: an embedded bbolt file
	// in Caddy's data directory.
	Store *StoreConfig `json:"store,omitempty"`
	// SigningAlg is RS256 (default) or ES256.
	SigningAlg string `json:"signing_alg,omitempty"`
	// Dev turns off the Secure cookie flag for local development over
	// plain HTTP. It is refused unless the issuer is on localhost.
	Dev bool `json:"dev,omitempty"`
	// Clients registered in the configuration.
	Clients []ClientConfig `json:"clients,omitempty"`
	// Chain is the authentication chain; default: password, level 1.
	Chain []ModuleConfig `json:"chain,omitempty"`
	// SessionIdle and SessionLifetime bound SSO sessions (24h, 30d).
	SessionIdle     caddy.Duration `json:"session_idle,omitempty"`
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
	// AccessTokenTTL and IDTokenTTL (15m each).
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`
	IDTokenTTL     caddy.Duration `json:"id_token_ttl,omitempty"`
	// RefreshTokenIdle and RefreshTokenLifetime (30 and 90 days): an
	// unused refresh token ends after the first, every one after the
	// second.
	RefreshTokenIdle     caddy.Duration `json:"refresh_token_idle,omitempty"`
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`
	// DeviceCodeTTL is how long a device code (RFC 8628) waits for the
	// person (10m); DevicePollInterval the least time a device waits
	// between polls, in whole seconds (5s).
	DeviceCodeTTL      caddy.Duration `json:"device_code_ttl,omitempty"`
	DevicePollInterval caddy.Duration `json:"device_poll_interval,omitempty"`
	// Scopes are admin-defined scopes and the claims they release.
	Scopes []provider.Scope `json:"scopes,omitempty"`
	// KeepSessionsOnPasswordChange: by default a new password ends every
	// session of the user (logout everywhere); this keeps them.
	KeepSessionsOnPasswordChange bool `json:"keep_sessions_on_password_change,omitempty"`
	// DemoUser, when set, is created at start with a known password. Only
	// for trying Gatehouse out: a warning is logged while it is active.
	DemoUser *DemoUser `json:"demo_user,omitempty"`
	// Regulation of guessing, per kind of key (user, ip, client); always
	// on, these tune the defaults.
	Regulation map[string]RuleConfig `json:"regulation,omitempty"`
	// PasswordPolicy for every new password (default: 12 characters,
	// zxcvbn score 3).
	PasswordPolicy *users.PasswordPolicy `json:"password_policy,omitempty"`
	// PasswordHashing sets argon2id and bounds concurrent checks.
	PasswordHashing *HashingConfig `json:"password_hashing,omitempty"`
	// HSTS is the Strict-Transport-Security value of https responses of
	// the IdP and the gates; default "max-age=31536000", "off" for none.
	HSTS string `json:"hsts,omitempty"`
	// MaxSessionsPerUser caps a user's SSO sessions (default 50); a new
	// one ends the oldest.
	MaxSessionsPerUser int `json:"max_sessions_per_user,omitempty"`
	// Registration is dynamic client registration; default off.
	Registration RegistrationConfig `json:"registration,omitzero"`
	// RequirePAR: every client must push its authorization requests to
	// the PAR endpoint (RFC 9126) first.
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// Mail is where messages to people go (activation, password
	// forgotten, magic links); default: an outbox directory.
	Mail *MailConfig `json:"mail,omitempty"`
	// Branding is how the pages look (name, logo, colour, CSS,
	// templates); default Gatehouse's own.
	Branding *BrandingConfig `json:"branding,omitempty"`
	// Lang are the languages pages may be shown in (BCP 47 tags of
	// shipped languages), the default first; default: every shipped
	// language, English first.
	Lang []string `json:"lang,omitempty"`
	// Events pushes Security Event Tokens to receivers (webhooks).
	Events *EventsConfig `json:"events,omitempty"`
	// AdminConsole is the admin console at <issuer>/admin; on by
	// default for the group "admins" at level 2.
	AdminConsole *ConsoleConfig `json:"admin_console,omitempty"`
	// UserSources are directories of people beside the local accounts
	// (LDAP, Active Directory), asked in order after them.
	UserSources []UserSourceConfig `json:"user_sources,omitempty"`

	state *sharedState
	// store is the shared store as this configuration uses it (its
	// calls measured).
	store    store.Store
	metrics  *metrics.Set
	poolKey  string
	provider *provider.Provider
	audit    *audit.Log
	regulate *regulate.Limiter
	browser  *browser.State
	sessions *session.Manager
	logout   *logout.Service
	sets     *sets.Service
	mailer   *mail.Mailer
	users    *users.Directory
	clients  *provider.Clients
	keys     *provider.Keys
	chain    *chain.Engine
	admin    *admin.Service
	logger   *slog.Logger
	ctx      caddy.Context
	// gates provisioned in this config, bound to their hosts at Start.
	gates []*Gate
	// ldapSources are the user sources opened, closed in Cleanup.
	ldapSources []*ldap.Source
	// stop ends the background work (logout deliveries, mail deliveries,
	// expiry sweeps, key sync).
	stop context.CancelFunc
}

// StoreConfig selects the store backend.
type StoreConfig struct {
	// Backend is "embedded" (default) or "redis".
	Backend string `json:"backend,omitempty"`
	// Path of the embedded store file.
	Path string `json:"path,omitempty"`
	// URL of the Redis server (redis:// or rediss://), or Addrs for
	// Sentinel (with MasterName) or Cluster.
	URL        string   `json:"url,omitempty"`
	Addrs      []string `json:"addrs,omitempty"`
	MasterName string   `json:"master_name,omitempty"`
	Password   string   `json:"password,omitempty"`
	// Prefix of Redis keys (default "gatehouse:").
	Prefix string `json:"prefix,omitempty"`
	// Timeout bounds each Redis call (default 500ms). After five calls
	// in a row that Redis did not answer, a circuit breaker answers at
	// once (gates: 503) for a second, then tries again.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// ClientConfig is a client declared in the configuration.
type ClientConfig struct {
	ID                      string   `json:"id"`
	Name                    string   `json:"name,omitempty"`
	Secret                  string   `json:"secret,omitempty"`
	Public                  bool     `json:"public,omitempty"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	Scopes                  []string `json:"scopes,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
	BackchannelLogoutURI    string   `json:"backchannel_logout_uri,omitempty"`
	FrontchannelLogoutURI   string   `json:"frontchannel_logout_uri,omitempty"`
	provider.ClientSettings
}

// ModuleConfig is one chain module.
type ModuleConfig struct {
	Name               string         `json:"name"`
	Kind               string         `json:"kind,omitempty"`
	Levels             []string       `json:"levels,omitempty"`
	After              []string       `json:"after,omitempty"`
	Remember           string         `json:"remember,omitempty"`
	RememberFor        caddy.Duration `json:"remember_for,omitempty"`
	Disabled           bool           `json:"disabled,omitempty"`
	ShowOnlyWhenNeeded bool           `json:"show_only_when_needed,omitempty"`
	// Settings are the kind's own: a JSON object of its settings
	// (string values in them may hold {env.*} placeholders).
	Settings json.RawMessage `json:"settings,omitempty"`

	// afterAt places an error about After at its Caddyfile line.
	afterAt func(error) error
}

// DemoUser is a throw-away account for the quick start.
type DemoUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "gatehouse", New: func() caddy.Module { return new(App) }}
}

// sharedState is what must outlive a config reload: the open store.
type sharedState struct {
	st store.Store
	// timed is st with its calls measured into the metrics of the
	// configuration in force: one wrapper for the life of the store, so
	// what is keyed by the store (the gates' session cache) survives
	// reloads.
	timed *metrics.Timer
}

func (s *sharedState) Destruct() error { return s.st.Close() }

// pool holds open stores across reloads, keyed by their location, so a
// reload never closes the store under live sessions.
var pool = caddy.NewUsagePool()

// Provision opens (or reuses) the store and builds the provider.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Slogger()
	a.ctx = ctx
	// Secrets may come from the environment: secret {env.WIKI_SECRET}.
	repl := caddy.NewReplacer()
	a.Issuer = repl.ReplaceKnown(a.Issuer, "")
	for i := range a.Clients {
		a.Clients[i].Secret = repl.ReplaceKnown(a.Clients[i].Secret, "")
	}
	if a.DemoUser != nil {
		a.DemoUser.Password = repl.ReplaceKnown(a.DemoUser.Password, "")
	}
	if a.Issuer == "" {
		return errors.New("gatehouse: issuer is required (the public URL of the site that serves gatehouse_idp)")
	}
	if _, err := provider.PathPrefix(a.Issuer); err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}
	iu, _ := url.Parse(a.Issuer)
	switch {
	case a.Dev && !isLocalHost(iu.Hostname()):
		return fmt.Errorf("gatehouse: dev mode (insecure cookies) is only allowed for an issuer on localhost, not %s", iu.Hostname())
	case !a.Dev && iu.Scheme == "http":
		return fmt.Errorf("gatehouse: issuer %s uses plain http, where browsers drop Secure cookies; use https, or set dev for local development on localhost", a.Issuer)
	}

	sc := StoreConfig{Backend: "embedded"}
	if a.Store != nil {
		sc = *a.Store
	}
	if sc.Backend == "" {
		sc.Backend = "embedded"
	}
	repl2 := caddy.NewReplacer()
	sc.URL, sc.Password = repl2.ReplaceKnown(sc.URL, ""), repl2.ReplaceKnown(sc.Password, "")
	var open func() (store.Store, error)
	switch sc.Backend {
	case "embedded":
		if sc.Path == "" {
			sc.Path = filepath.Join(caddy.AppDataDir(), "gatehouse", "gatehouse.db")
		}
		a.poolKey = "embedded:" + sc.Path
		open = func() (store.Store, error) { return embedded.Open(sc.Path, embedded.Options{}) }
	case "redis":
		if sc.URL == "" && len(sc.Addrs) == 0 {
			return errors.New("gatehouse: store redis needs a URL (redis://host:6379/0) or addresses")
		}
		a.poolKey = "redis:" + sc.URL + strings.Join(sc.Addrs, ",") + "|" + sc.MasterName + "|" + sc.Prefix
		open = func() (store.Store, error) {
			rs, err := redisstore.Open(redisstore.Options{URL: sc.URL, Addrs: sc.Addrs, MasterName: sc.MasterName,
				Password: sc.Password, Prefix: sc.Prefix, Timeout: time.Duration(sc.Timeout)})
			if err != nil {
				return nil, err
			}
			log := caddy.Log().Named("gatehouse.store")
			ropt := redisstore.Options{Timeout: time.Duration(sc.Timeout)}
			st := breaker.Wrap(rs, breaker.Options{Failure: redisstore.IsUnavailable, CallTimeout: ropt.CallTimeout(), OnChange: func(open bool) {
				if open {
					log.Error("redis does not answer: failing fast (gates answer 503) and probing every second")
				} else {
					log.Info("redis answers again")
				}
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := st.Ping(ctx); err != nil {
				// Not fatal: gates fail closed until Redis answers.
				caddy.Log().Warn("gatehouse: redis store not reachable yet; gates answer 503 until it is")
			}
			return st, nil
		}
	default:
		return fmt.Errorf("gatehouse: unknown store backend %q (supported: embedded, redis)", sc.Backend)
	}
	if validatingOnly() {
		// caddy validate / adapt --validate: the configuration is built
		// on a throw-away store, so that validating neither waits for
		// the store a running Caddy holds nor writes to it (keys, the
		// demo user).
		a.poolKey = "validate:" + a.poolKey
		open = func() (store.Store, error) { return memstore.New(), nil }
	}
	v, _, err := pool.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		st, err := open()
		if err != nil {
			return nil, err
		}
		return &sharedState{st: st, timed: metrics.NewTimer(st)}, nil
	})
	if err != nil {
		a.poolKey = ""
		return fmt.Errorf("gatehouse: opening store: %w", err)
	}
	a.state = v.(*sharedState)
	if a.metrics, err = metrics.New(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("gatehouse: metrics: %w", err)
	}
	a.state.timed.Use(a.metrics)
	st := store.Store(a.state.timed)
	a.store = st

	bg := context.Background()
	if a.browser, err = browser.New(bg, st, browser.Options{Secure: !a.Dev}); err != nil {
		return fmt.Errorf("gatehouse: cookie keys: %w", err)
	}
	a.sessions, err = session.NewManager(bg, st, session.Options{
		Browser:  a.browser,
		Idle:     time.Duration(a.SessionIdle),
		Lifetime: time.Duration(a.SessionLifetime),
	})
	if err != nil {
		return fmt.Errorf("gatehouse: sessions: %w", err)
	}
	a.audit = auditLog(ctx)
	hasher, err := a.PasswordHashing.hasher()
	if err != nil {
		return fmt.Errorf("gatehouse: password_hashing: %w", err)
	}
	policy := users.DefaultPasswordPolicy()
	if a.PasswordPolicy != nil {
		policy = *a.PasswordPolicy
		if err := policy.Validate(); err != nil {
			return fmt.Errorf("gatehouse: password_policy: %w", err)
		}
	}
	sources, recheck, err := a.userSources()
	if err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}
	a.users = users.NewWith(st, users.Options{Hasher: hasher, Policy: &policy, Sources: sources, Recheck: recheck})
	rp, err := regulationPolicy(a.Regulation)
	if err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}
	if a.regulate, err = regulate.New(st, rp, nil); err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}

	var clients []provider.Client
	for _, c := range a.Clients {
		clients = append(clients, provider.Client{
			ID: c.ID, Name: c.Name, Secret: c.Secret, Public: c.Public, RedirectURIs: c.RedirectURIs,
			Scopes: c.Scopes, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackchannelLogoutURI: c.BackchannelLogoutURI,
			FrontchannelLogoutURI: c.FrontchannelLogoutURI, ClientSettings: c.ClientSettings,
		})
	}
	if a.clients, err = provider.NewClients(st, clients); err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}

	tokenTTL := max(time.Duration(a.AccessTokenTTL), time.Duration(a.IDTokenTTL), 15*time.Minute)
	if a.keys, err = provider.NewKeys(bg, st, a.SigningAlg, tokenTTL+5*time.Minute, nil); err != nil {
		return fmt.Errorf("gatehouse: signing keys: %w", err)
	}

	a.logout, err = logout.New(logout.Config{Store: st, Sessions: a.sessions, Logger: a.logger, Audit: a.audit,
		MaxSessionsPerUser: a.MaxSessionsPerUser,
		Queue:              logout.NewQueue(logout.QueueConfig{Store: st, Issuer: a.Issuer, Signer: a.keys, Logger: a.logger, Audit: a.audit})})
	if err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}

	if err := a.Branding.apply(); err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}
	if err := web.SetLanguages(a.Lang); err != nil {
		return fmt.Errorf("gatehouse: lang: %w", err)
	}
	if a.mailer, err = a.newMailer(st); err != nil {
		return err
	}

	cc := chain.DefaultConfig()
	if len(a.Chain) > 0 {
		cc = chain.Config{}
		for _, m := range a.Chain {
			kind := m.Kind
			if kind == "" {
				kind = m.Name
			}
			settings, err := replaceInSettings(m.Settings, repl)
			if err != nil {
				return fmt.Errorf("gatehouse: chain: module %q: %w", m.Name, err)
			}
			cc.Modules = append(cc.Modules, chain.ModuleConfig{
				Name: m.Name, Kind: kind, Levels: m.Levels, After: m.After, Remember: m.Remember,
				RememberFor: time.Duration(m.RememberFor), Disabled: m.Disabled,
				ShowOnlyWhenNeeded: m.ShowOnlyWhenNeeded, Settings: settings,
			})
		}
	}
	a.chain, err = chain.New(cc, chain.Options{
		Store: st, Sessions: a.sessions, Users: a.users, Logout: a.logout, Regulate: a.regulate, Audit: a.audit,
		Issuer: a.Issuer, LoginPath: provider.LoginPath(a.Issuer), StaticPath: provider.StaticPath(a.Issuer),
		KeepSessionsOnPasswordChange: a.KeepSessionsOnPasswordChange, Logger: a.logger,
		Mailer: chainMailer{a.mailer}, Linker: &linking.Linker{Users: a.users, Audit: a.audit},
	})
	if err != nil {
		return fmt.Errorf("gatehouse: chain: %w", err)
	}

	if err := a.provisionEvents(st); err != nil {
		return err
	}

	cons, err := a.provisionConsole()
	if err != nil {
		return err
	}
	pc := provider.Config{
		Issuer: a.Issuer, Store: st, Users: a.users, Clients: a.clients, Keys: a.keys,
		Sessions: a.sessions, Chain: a.chain, Logout: a.logout, Regulate: a.regulate, Audit: a.audit, HSTS: hstsHeader(a.HSTS),
		AccessTokenTTL: time.Duration(a.AccessTokenTTL), IDTokenTTL: time.Duration(a.IDTokenTTL),
		RefreshTokenIdle: time.Duration(a.RefreshTokenIdle), RefreshTokenLifetime: time.Duration(a.RefreshTokenLifetime),
		DeviceCodeTTL: time.Duration(a.DeviceCodeTTL), DevicePollInterval: time.Duration(a.DevicePollInterval),
		Scopes: a.Scopes, RequirePAR: a.RequirePAR, Logger: a.logger,
		Registration: a.Registration.Policy, RegistrationsPerIP: a.Registration.PerIP, MaxRegisteredClients: a.Registration.MaxClients,
		RegistrationPrivateNetworks: a.Registration.PrivateNetworks, Metrics: a.metrics,
	}
	if cons != nil {
		pc.Console = cons // a nil *Console in the interface would not be nil
	}
	if a.provider, err = provider.New(pc); err != nil {
		return fmt.Errorf("gatehouse: %w", err)
	}
	a.admin.Provider = a.provider
	if err := a.metrics.Watch(metrics.Sources{Audit: a.audit, Logout: a.logout.Queue(), Hasher: a.users.Hasher(), SETs: a.sets}); err != nil {
		return fmt.Errorf("gatehouse: metrics: %w", err)
	}
	// Gates: their sessions end with the SSO session, on every site.
	a.logout.Subscribe(gate.Sessions{Store: st})
	if a.DemoUser != nil {
		if err := a.ensureDemoUser(bg); err != nil {
			return fmt.Errorf("gatehouse: demo user: %w", err)
		}
	}
	return nil
}

// ensureDemoUser creates the demo account, or resets its password to the
// configured one.
func (a *App) ensureDemoUser(ctx context.Context) error {
	d := a.DemoUser
	if d.Username == "" || d.Password == "" {
		return errors.New("demo_user needs a username and a password")
	}
	dir := a.users.WithoutPolicy() // the configuration fixes this password
	u, err := dir.Lookup(ctx, d.Username)
	if errors.Is(err, users.ErrNotFound) {
		_, err = dir.Create(ctx, users.User{
			Username: d.Username, Name: "Demo User", Email: d.Username + "@example.com", EmailVerified: true,
			Groups: []string{"demo"},
		}, d.Password)
		return err
	} else if err != nil {
		return err
	}
	if _, err := dir.Authenticate(ctx, d.Username, d.Password); err != nil {
		_, err = dir.SetPassword(ctx, u.Subject, d.Password)
		return err
	}
	return nil
}

// Start binds gates to their hosts and logs what is running, loudly when
// a demo credential is active.
func (a *App) Start() error {
	if err := a.bindGates(); err != nil {
		return err
	}
	if a.DemoUser != nil {
		a.logger.Warn("GATEHOUSE DEMO USER IS ACTIVE: anyone who reads the configuration can sign in as this user; remove demo_user before real use",
			"username", a.DemoUser.Username)
	}
	if a.Dev {
		a.logger.Warn("gatehouse dev mode: cookies are not marked Secure; use only for local development")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	go a.logout.Run(ctx)
	go a.mailer.Run(ctx)
	if a.sets != nil {
		go a.sets.Run(ctx)
	}
	go a.syncKeys(ctx)
	a.logger.Info("gatehouse identity provider ready", "issuer", a.Issuer, "levels", a.chain.Levels())
	return nil
}

// Stop stops the background work; shared state is released in Cleanup.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
	}
	return nil
}

// keySyncEvery is how often an instance checks its keys against the
// store: a cluster whose store lost its data (Redis flushed or replaced)
// agrees on its keys again within this time, by itself.
var keySyncEvery = 10 * time.Second

// syncKeys keeps the cookie keys and the signing keys in step with the
// store until ctx ends.
func (a *App) syncKeys(ctx context.Context) {
	t := time.NewTicker(keySyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.browser.Sync(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("gatehouse: syncing cookie keys with the store", "error", err)
		}
		if err := a.keys.Sync(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("gatehouse: syncing signing keys with the store", "error", err)
		}
	}
}

// Cleanup releases this config's hold on the shared store.
func (a *App) Cleanup() error {
	a.closeUserSources()
	if a.poolKey != "" {
		_, err := pool.Delete(a.poolKey)
		return err
	}
	return nil
}

// Provider returns the OIDC provider.
func (a *App) Provider() *provider.Provider { return a.provider }

func isLocalHost(host string) bool { return netguard.LocalHost(host) }

var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
