package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/gate"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	caddy.RegisterModule(Gate{})
	httpcaddyfile.RegisterHandlerDirective("gatehouse_gate", parseGate)
	// Authentication runs before anything that touches the request.
	httpcaddyfile.RegisterDirectiveOrder("gatehouse_gate", httpcaddyfile.After, "forward_auth")
}

// Gate protects the routes it is placed on with single sign-on.
type Gate struct {
	// ACR: any of these levels is required. Empty: any signed-in user.
	ACR []string `json:"acr,omitempty"`
	// MaxAge: the user must have authenticated within this time.
	MaxAge      caddy.Duration `json:"max_age,omitempty"`
	AllowUsers  []string       `json:"allow_users,omitempty"`
	AllowGroups []string       `json:"allow_groups,omitempty"`
	DenyUsers   []string       `json:"deny_users,omitempty"`
	DenyGroups  []string       `json:"deny_groups,omitempty"`
	// Bypass paths need no login ("/health", "/public/*").
	Bypass []string `json:"bypass,omitempty"`
	// Headers renames or switches off identity headers; nil: defaults.
	Headers *gate.Headers `json:"headers,omitempty"`
	// Hosts the gate serves. Default: the host names of its site.
	Hosts []string `json:"hosts,omitempty"`
	// ForwardAuth answers /.gatehouse/verify for other proxies.
	ForwardAuth bool `json:"forward_auth,omitempty"`
	// Issuer, ClientID, ClientSecret: an external OpenID provider.
	// Default: the gatehouse app's own provider (registered automatically).
	Issuer       string `json:"issuer,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// SessionLifetime (12h) and CacheTTL (30s; how long a removed group
	// or disabled user may still pass).
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
	CacheTTL        caddy.Duration `json:"cache_ttl,omitempty"`
	// UpstreamLogout is the legacy app's own logout hook: when a user's
	// session ends, it gets a signed logout token (back-channel logout
	// to upstreams; audience: the site's origin).
	UpstreamLogout string `json:"upstream_logout,omitempty"`

	gate   *gate.Gate
	places []placement // where it sits in the server config (bind.go)
	// levels, when read from a Caddyfile, are those the global
	// gatehouse option's chain grants (empty without that option).
	levels *[]string
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.gatehouse_gate", New: func() caddy.Module { return new(Gate) }}
}

// localGateClient is the client id under which gates sign in to the
// gatehouse app's own provider. It is public (PKCE); its redirect URIs
// are the callbacks of the origins the gates serve (bind.go).
const localGateClient = "gatehouse-gates"

// Provision builds the gate.
func (h *Gate) Provision(ctx caddy.Context) error {
	app, err := gatehouseApp(ctx, "gatehouse_gate")
	if err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	cfg := gate.Config{
		Store: app.store, Cookies: app.sessions.State, Queue: app.logout.Queue(),
		Policy: gate.Policy{ACR: h.ACR, MaxAge: time.Duration(h.MaxAge), AllowUsers: h.AllowUsers, AllowGroups: h.AllowGroups,
			DenyUsers: h.DenyUsers, DenyGroups: h.DenyGroups, Bypass: h.Bypass},
		SessionLifetime: time.Duration(h.SessionLifetime), CacheTTL: time.Duration(h.CacheTTL),
		ForwardAuth: h.ForwardAuth, HSTS: hstsHeader(app.HSTS), Logger: ctx.Slogger(),
	}
	if h.Issuer != "" {
		cfg.Issuer = repl.ReplaceKnown(h.Issuer, "")
		cfg.ClientID = repl.ReplaceKnown(h.ClientID, "")
		cfg.ClientSecret = repl.ReplaceKnown(h.ClientSecret, "")
		if cfg.ClientID == "" {
			return errors.New("gatehouse_gate: client_id is required with an external issuer")
		}
	} else {
		if app.provider == nil {
			return errors.New("gatehouse_gate: no issuer: set one in the gatehouse app (or give the gate an external issuer)")
		}
		for _, l := range h.ACR {
			if !app.chain.KnownLevel(l) {
				return fmt.Errorf("gatehouse_gate: acr %q is not a level of the chain (levels: %s)", l, strings.Join(app.chain.Levels(), ", "))
			}
		}
		cfg.Issuer, cfg.ClientID = app.Issuer, localGateClient
		cfg.HTTPClient = &http.Client{Transport: inProcess(app.Issuer, app.provider), Timeout: 15 * time.Second}
		cfg.Refresh = app.refreshGateUser
		cfg.Sign = app.signAssertion
	}
	cfg.Observe = app.metrics.Gate(h.metricsName)
	if h.gate, err = gate.New(context.Background(), cfg); err != nil {
		return fmt.Errorf("gatehouse_gate: %w", err)
	}
	app.gates = append(app.gates, h)
	return nil
}

// metricsName names the gate in metrics: its sites (once bound) and
// levels.
func (h *Gate) metricsName() string {
	if h.gate == nil || len(h.gate.Origins()) == 0 {
		return ""
	}
	acr := "any"
	if len(h.ACR) > 0 {
		acr = strings.Join(h.ACR, ",")
	}
	return strings.Join(h.gate.Origins(), " ") + " acr=" + acr
}

// ServeHTTP lets the request through when the gate passes it.
func (h *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// TLS that ended at a proxy Caddy trusts (trusted_proxies): the
	// scheme the browser used is the proxy's X-Forwarded-Proto.
	if r.TLS == nil {
		if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
			if p := r.Header.Get("X-Forwarded-Proto"); p == "https" {
				r = r.WithContext(gate.WithScheme(r.Context(), p))
			}
		}
	}
	// The gate decides on the path as it is now; a rewrite before it
	// (try_files, uri) may hide the path an upstream such as FastCGI
	// still routes on (REQUEST_URI): that one must be plain too.
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil &&
		orig.URL.EscapedPath() != r.URL.EscapedPath() {
		if _, err := gate.CanonicalPath(orig.URL.EscapedPath()); err != nil {
			gate.RefusePath(w, err)
			return nil
		}
	}
	s, handled := h.gate.Check(w, r)
	if handled {
		return nil
	}
	if s != nil {
		// The user's placeholders, answered when asked (one provider
		// rather than six map writes on every request).
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		repl.Map(func(key string) (any, bool) { return userPlaceholder(s, key) })
	}
	return next.ServeHTTP(w, r)
}

// userPlaceholder is the value of an http.auth.user.* placeholder.
func userPlaceholder(s *gate.Session, key string) (any, bool) {
	field, ok := strings.CutPrefix(key, "http.auth.user.")
	if !ok {
		return nil, false
	}
	switch field {
	case "id":
		return s.Username, true
	case "sub":
		return s.Subject, true
	case "email":
		return s.Email, true
	case "name":
		return s.Name, true
	case "groups":
		return strings.Join(s.Groups, ","), true
	case "acr":
		return s.ACR, true
	}
	return nil, false
}

// refreshGateUser re-reads the user behind a gate session (asking a
// user source again when the account is federated).
func (a *App) refreshGateUser(ctx context.Context, s *gate.Session) error {
	u, err := a.users.Current(ctx, s.Subject)
	if errors.Is(err, users.ErrNotFound) {
		return gate.ErrUserGone
	} else if err != nil {
		return err
	}
	s.Username, s.Email, s.Name, s.Groups, s.Disabled = u.Username, u.Email, u.Name, u.Groups, u.Disabled
	return nil
}

// signAssertion signs a gate's identity assertion with the IdP's keys.
func (a *App) signAssertion(claims map[string]any) (string, error) {
	return a.keys.SignClaims("gatehouse-assertion+jwt", claims)
}

// UnmarshalCaddyfile:
//
//	gatehouse_gate [<matcher>] {
//		acr <level>...
//		max_age <duration>
//		allow user|group <name>...
//		deny user|group <name>...
//		bypass <path>...
//		header user|email|name|groups|acr|assertion <name>|off
//		headers off
//		hosts <host>...
//		forward_auth
//		issuer <url>
//		client_id <id>
//		client_secret <secret>
//		session_lifetime <duration>
//		cache_ttl <duration>
//		upstream_logout <url>
//	}
func (h *Gate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	gateAt := at(d)
	var acrAt func(error) error
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "acr":
			if err := someArgs(d, &h.ACR); err != nil {
				return err
			}
			acrAt = at(d)
		case "max_age", "session_lifetime", "cache_ttl":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("%s: %q is not a positive duration", opt, s)
			}
			*map[string]*caddy.Duration{"max_age": &h.MaxAge, "session_lifetime": &h.SessionLifetime, "cache_ttl": &h.CacheTTL}[opt] = caddy.Duration(dur)
		case "allow", "deny":
			args := d.RemainingArgs()
			if len(args) < 2 || args[0] != "user" && args[0] != "group" {
				return d.Errf("%s user|group <name>...", opt)
			}
			dst := map[string]*[]string{"allow user": &h.AllowUsers, "allow group": &h.AllowGroups,
				"deny user": &h.DenyUsers, "deny group": &h.DenyGroups}[opt+" "+args[0]]
			*dst = append(*dst, args[1:]...)
		case "bypass":
			if err := someArgs(d, &h.Bypass); err != nil {
				return err
			}
			for _, b := range h.Bypass {
				if !strings.HasPrefix(b, "/") {
					return d.Errf("bypass path %q must start with /", b)
				}
			}
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("header user|email|name|groups|acr|assertion <name>|off")
			}
			if h.Headers == nil {
				def := gate.DefaultHeaders()
				h.Headers = &def
			}
			ptr := map[string]*string{"user": &h.Headers.User, "email": &h.Headers.Email, "name": &h.Headers.Name,
				"groups": &h.Headers.Groups, "acr": &h.Headers.ACR, "assertion": &h.Headers.Assertion}[args[0]]
			if ptr == nil {
				return d.Errf("unknown identity header %q (user, email, name, groups, acr, assertion)", args[0])
			}
			if args[1] == "off" {
				*ptr = ""
			} else {
				*ptr = args[1]
			}
		case "headers":
			args := d.RemainingArgs()
			if len(args) != 1 || args[0] != "off" {
				return d.Err("headers off")
			}
			h.Headers = &gate.Headers{}
		case "hosts":
			if err := someArgs(d, &h.Hosts); err != nil {
				return err
			}
		case "forward_auth":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ForwardAuth = true
		case "issuer":
			if err := oneArg(d, &h.Issuer); err != nil {
				return err
			}
		case "upstream_logout":
			if err := oneArg(d, &h.UpstreamLogout); err != nil {
				return err
			}
			if !strings.HasPrefix(h.UpstreamLogout, "http://") && !strings.HasPrefix(h.UpstreamLogout, "https://") {
				return d.Errf("upstream_logout must be an http(s) URL, not %q", h.UpstreamLogout)
			}
		case "client_id":
			if err := oneArg(d, &h.ClientID); err != nil {
				return err
			}
		case "client_secret":
			if err := oneArg(d, &h.ClientSecret); err != nil {
				return err
			}
		default:
			return d.Errf("unknown gatehouse_gate option %q", opt)
		}
	}
	if (h.ClientID != "" || h.ClientSecret != "") && h.Issuer == "" {
		return d.Err("client_id and client_secret go with an external issuer")
	}
	if h.Issuer != "" && h.ClientID == "" {
		return d.Err("an external issuer needs client_id (and client_secret unless the client is public)")
	}
	if h.Issuer != "" || h.levels == nil {
		return nil // another IdP's levels; or not read from a Caddyfile
	}
	if len(*h.levels) == 0 {
		return gateAt(errors.New("gatehouse_gate needs an IdP: configure the gatehouse global option (issuer, chain), or give the gate an external issuer with client_id"))
	}
	for _, l := range h.ACR {
		if !slices.Contains(*h.levels, l) {
			return acrAt(fmt.Errorf("acr %q is not a level of the chain (levels: %s): use one of those, or add it to a module's levels", l, strings.Join(*h.levels, ", ")))
		}
	}
	return nil
}

func parseGate(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	levels, err := chainLevels(h.Option("gatehouse"))
	if err != nil {
		return nil, err
	}
	g := Gate{levels: &levels}
	err = g.UnmarshalCaddyfile(h.Dispenser)
	return &g, err
}

// chainLevels lists the levels the chain of the gatehouse global option
// grants (the default chain's without a chain block); none without the
// option.
func chainLevels(opt any) ([]string, error) {
	app, ok := opt.(httpcaddyfile.App)
	if !ok {
		return []string{}, nil
	}
	var a App
	if err := json.Unmarshal(app.Value, &a); err != nil {
		return nil, err
	}
	mods := chain.DefaultConfig().Modules
	if len(a.Chain) > 0 {
		mods = nil
		for _, m := range a.Chain {
			mods = append(mods, chain.ModuleConfig{Levels: m.Levels})
		}
	}
	levels := []string{}
	for _, m := range mods {
		for _, l := range m.Levels {
			if !slices.Contains(levels, l) {
				levels = append(levels, l)
			}
		}
	}
	return levels, nil
}

var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
	_ caddyfile.Unmarshaler       = (*Gate)(nil)
)
