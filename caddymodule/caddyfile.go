package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/provider"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("gatehouse", parseGlobal)
}

// parseGlobal parses the gatehouse global option:
//
//	gatehouse {
//		issuer <url>
//		store embedded [<path>]
//		store redis [<url>] {            # or: addrs, master_name, password, prefix, timeout
//		}
//		signing_alg RS256|ES256
//		dev
//		keep_sessions_on_password_change
//		session_idle <duration>
//		session_lifetime <duration>
//		access_token_ttl <duration>
//		id_token_ttl <duration>
//		refresh_token_idle <duration>      # unused refresh tokens end (30d)
//		refresh_token_lifetime <duration>  # every refresh token ends (90d)
//		device_code_ttl <duration>         # a device code waits for the person (10m)
//		device_poll_interval <duration>    # least time between a device's polls (5s)
//		demo_user <username> <password>
//		lang <tag>...                    # languages of the pages, the default first (all, English)
//		regulation {                     # guessing: slowed, then banned
//			user|ip|client {
//				max_retries <n>  find_time <d>  ban_time <d>  max_ban_time <d>
//				free_retries <n>  delay <d>
//			}
//		}
//		password_policy { min_length <n>  max_length <n>  min_strength <0-4> }
//		password_hashing { memory <size>  time <n>  threads <n>  concurrency <n>  wait <d> }
//		hsts <value>|off
//		max_sessions_per_user <n>
//		registration off|open|initial_access_token {   # dynamic client registration (off)
//			per_ip <n>                     # registrations per address and hour (20)
//			max_clients <n>                # registered clients in all (10000)
//		}
//		require_pushed_authorization_requests  # every client must use PAR
//		mail {                             # default: an outbox in the data directory
//			from <address>
//			smtp <host:port> { username <u>  password <p>  tls|starttls|none  timeout <d> }
//			templates <dir>
//			outbox <dir>
//		}
//		events {                           # Security Event Tokens (webhooks)
//			receiver <url> { events <kind>...  audience <aud>  authorization <value>  private_networks }
//			max_queued <n>
//		}
//		admin_console off | {              # <issuer>/admin, on by default
//			group <group>  acr <level>  max_age <d>  audit_events <n>
//		}
//		users ldap [<name>] { ... }        # LDAP / Active Directory people (see parseUserSource)
//		client <id> {
//			name <display name>
//			secret <secret> | public
//			redirect_uri <uri>...
//			scopes <scope>...
//			token_endpoint_auth_method client_secret_basic|client_secret_post|client_secret_jwt|private_key_jwt|none
//			post_logout_redirect_uri <uri>...
//			backchannel_logout_uri <uri>
//			frontchannel_logout_uri <uri>
//			frontchannel_logout_session_required
//			grant_types <grant type>...     # authorization_code refresh_token client_credentials ...
//			response_types <type>...        # "code", "id_token token", ... (quoted when two words)
//			first_party                     # no consent page
//			resource_server                 # may introspect every access token
//			subject_type public|pairwise
//			sector_identifier_uri <uri>
//			userinfo_signed_response_alg RS256|ES256
//			jwks <file> | `<inline JWK set>`  # public keys: private_key_jwt, signed request objects
//			jwks_uri <url>                  # https (http only on loopback)
//			token_endpoint_auth_signing_alg <alg>
//			request_object_signing_alg <alg>
//			request_uris <url>...           # where the client publishes request objects
//			require_pushed_authorization_requests
//		}
//		scope <name> {                     # admin-defined scopes
//			description <text>
//			claims <claim>...
//		}
//		chain {
//			<name> {
//				kind <kind>          # default: the name
//				levels <level>...
//				after <module>...
//				remember none|session|persistent [<duration>]
//				disabled
//				show_only_when_needed
//				<setting> <value>... # the kind's own settings, typed; checked here
//			}
//		}
//	}
func parseGlobal(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("gatehouse is configured twice in the global options")
	}
	var app App
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "gatehouse", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "gatehouse"
	if d.NextArg() {
		return d.ArgErr()
	}
	var devAt func(error) error
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "issuer":
			if err := oneArg(d, &a.Issuer); err != nil {
				return err
			}
		case "store":
			var sc StoreConfig
			if !d.NextArg() {
				return d.ArgErr()
			}
			sc.Backend = d.Val()
			switch sc.Backend {
			case "embedded":
				if d.NextArg() {
					sc.Path = d.Val()
				}
			case "redis":
				if d.NextArg() {
					sc.URL = d.Val()
				}
				for nesting := d.Nesting(); d.NextBlock(nesting); {
					switch o := d.Val(); o {
					case "addrs":
						if err := someArgs(d, &sc.Addrs); err != nil {
							return err
						}
					case "master_name":
						if err := oneArg(d, &sc.MasterName); err != nil {
							return err
						}
					case "password":
						if err := oneArg(d, &sc.Password); err != nil {
							return err
						}
					case "prefix":
						if err := oneArg(d, &sc.Prefix); err != nil {
							return err
						}
					case "timeout":
						var v string
						if err := oneArg(d, &v); err != nil {
							return err
						}
						dur, err := caddy.ParseDuration(v)
						if err != nil || dur <= 0 {
							return d.Errf("store redis timeout: %q is not a positive duration", v)
						}
						sc.Timeout = caddy.Duration(dur)
					default:
						return d.Errf("unknown redis option %q (addrs, master_name, password, prefix, timeout)", o)
					}
				}
				if sc.URL == "" && len(sc.Addrs) == 0 {
					return d.Err("store redis needs a URL (redis://host:6379/0) or an addrs line")
				}
			default:
				return d.Errf("unknown store %q (supported: embedded, redis)", sc.Backend)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			a.Store = &sc
		case "signing_alg":
			if err := oneArg(d, &a.SigningAlg); err != nil {
				return err
			}
			if a.SigningAlg != "RS256" && a.SigningAlg != "ES256" {
				return d.Errf("signing_alg must be RS256 or ES256, not %q", a.SigningAlg)
			}
		case "dev":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.Dev = true
			devAt = at(d)
		case "keep_sessions_on_password_change":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.KeepSessionsOnPasswordChange = true
		case "require_pushed_authorization_requests":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.RequirePAR = true
		case "session_idle", "session_lifetime", "access_token_ttl", "id_token_ttl", "refresh_token_idle", "refresh_token_lifetime",
			"device_code_ttl", "device_poll_interval":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("%s: %q is not a positive duration", opt, s)
			}
			if opt == "device_poll_interval" && dur%time.Second != 0 {
				return d.Errf("device_poll_interval: %q is not a whole number of seconds (devices are told seconds)", s)
			}
			ptr := map[string]*caddy.Duration{"session_idle": &a.SessionIdle, "session_lifetime": &a.SessionLifetime,
				"access_token_ttl": &a.AccessTokenTTL, "id_token_ttl": &a.IDTokenTTL,
				"refresh_token_idle": &a.RefreshTokenIdle, "refresh_token_lifetime": &a.RefreshTokenLifetime,
				"device_code_ttl": &a.DeviceCodeTTL, "device_poll_interval": &a.DevicePollInterval}[opt]
			*ptr = caddy.Duration(dur)
		case "regulation":
			r, err := parseRegulation(d)
			if err != nil {
				return err
			}
			a.Regulation = r
		case "password_policy":
			p, err := parsePasswordPolicy(d)
			if err != nil {
				return err
			}
			a.PasswordPolicy = p
		case "password_hashing":
			h, err := parseHashing(d)
			if err != nil {
				return err
			}
			a.PasswordHashing = h
		case "hsts":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("hsts <header value>|off")
			}
			a.HSTS = strings.Join(args, " ")
		case "max_sessions_per_user":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("max_sessions_per_user must be a positive number, not %q", v)
			}
			a.MaxSessionsPerUser = n
		case "demo_user":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("demo_user takes a username and a password")
			}
			a.DemoUser = &DemoUser{Username: args[0], Password: args[1]}
		case "registration":
			rc, err := parseRegistration(d)
			if err != nil {
				return err
			}
			a.Registration = rc
		case "mail":
			if err := a.parseMail(d); err != nil {
				return err
			}
		case "branding":
			if err := a.parseBranding(d); err != nil {
				return err
			}
		case "lang":
			if err := a.parseLang(d); err != nil {
				return err
			}
		case "events":
			if err := a.parseEvents(d); err != nil {
				return err
			}
		case "admin_console":
			if err := a.parseConsole(d); err != nil {
				return err
			}
		case "users":
			us, err := parseUserSource(d)
			if err != nil {
				return err
			}
			a.UserSources = append(a.UserSources, us)
		case "client":
			c, err := parseClient(d)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(a.Clients, func(o ClientConfig) bool { return o.ID == c.ID }) {
				return d.Errf("client %s is defined twice", c.ID)
			}
			a.Clients = append(a.Clients, c)
		case "scope":
			sc, err := parseScope(d)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(a.Scopes, func(o provider.Scope) bool { return o.Name == sc.Name }) {
				return d.Errf("scope %s is defined twice", sc.Name)
			}
			a.Scopes = append(a.Scopes, sc)
		case "chain":
			if d.NextArg() {
				return d.ArgErr()
			}
			if len(a.Chain) > 0 {
				return d.Err("chain is configured twice")
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				m, err := parseModule(d)
				if err != nil {
					return err
				}
				a.Chain = append(a.Chain, m)
			}
			if len(a.Chain) == 0 {
				return d.Err("chain needs at least one module")
			}
			if err := checkAfter(a.Chain); err != nil {
				return err
			}
		default:
			return d.Errf("unknown gatehouse option %q", opt)
		}
	}
	if a.Issuer == "" {
		return d.Err("gatehouse needs an issuer (the public URL of the site with gatehouse_idp)")
	}
	if u, err := url.Parse(a.Issuer); devAt != nil && err == nil && !strings.Contains(a.Issuer, "{") && !isLocalHost(u.Hostname()) {
		return devAt(fmt.Errorf("dev (cookies without Secure, plain http) is only for an issuer on localhost, not %s: remove dev, and serve the issuer over https", u.Hostname()))
	}
	return a.checkConsoleLevel()
}

// at returns what places an error at d's current token, for checks made
// once more of the configuration is read.
func at(d *caddyfile.Dispenser) func(error) error {
	file, line := d.File(), d.Line()
	return func(err error) error { return fmt.Errorf("%w, at %s:%d", err, file, line) }
}

// checkAfter refuses an after naming no module of the chain (a typo),
// at its line.
func checkAfter(mods []ModuleConfig) error {
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		names = append(names, m.Name)
	}
	for _, m := range mods {
		for _, p := range m.After {
			if !slices.Contains(names, p) {
				return m.afterAt(fmt.Errorf("module %s: after %q: the chain has no module of that name (modules: %s)", m.Name, p, strings.Join(names, ", ")))
			}
		}
	}
	return nil
}

// parseModule reads one module of the chain block. Its settings are
// checked against the kind's settings struct as they are read (so an
// error names their line), which needs the kind first: a first pass
// over the module's block finds it.
func parseModule(outer *caddyfile.Dispenser) (ModuleConfig, error) {
	d := outer.NewFromNextSegment()
	d.Next()
	m := ModuleConfig{Name: d.Val()}
	kind := m.Name // the default
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() == "kind" && d.NextArg() {
			kind = d.Val()
		}
	}
	if !chain.KnownKind(kind) {
		d.Reset()
		d.Next()
		return m, d.Errf("module %s: unknown kind %q (known: %s)", m.Name, kind, strings.Join(chain.Kinds(), ", "))
	}
	d.Reset()
	d.Next()
	if d.NextArg() {
		return m, d.Errf("module %s: unexpected argument %q (options go in a block)", m.Name, d.Val())
	}
	settings := map[string]json.RawMessage{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "kind":
			if err := oneArg(d, &m.Kind); err != nil {
				return m, err
			}
		case "levels", "level":
			if err := someArgs(d, &m.Levels); err != nil {
				return m, err
			}
		case "after":
			m.afterAt = at(d)
			if err := someArgs(d, &m.After); err != nil {
				return m, err
			}
		case "remember":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return m, d.Errf("module %s: remember none|session|persistent [duration]", m.Name)
			}
			m.Remember = args[0]
			if m.Remember != "none" && m.Remember != "session" && m.Remember != "persistent" {
				return m, d.Errf("module %s: remember must be none, session or persistent, not %q", m.Name, m.Remember)
			}
			if len(args) == 2 {
				dur, err := caddy.ParseDuration(args[1])
				if err != nil || dur <= 0 {
					return m, d.Errf("module %s: remember duration %q is not a positive duration", m.Name, args[1])
				}
				m.RememberFor = caddy.Duration(dur)
			}
		case "disabled":
			m.Disabled = true
		case "show_only_when_needed":
			m.ShowOnlyWhenNeeded = true
		default:
			args := d.RemainingArgs()
			if d.NextBlock(d.Nesting()) {
				return m, d.Errf("module %s: setting %s takes no block", m.Name, opt)
			}
			if _, dup := settings[opt]; dup {
				return m, d.Errf("module %s: setting %s is given twice", m.Name, opt)
			}
			v, err := chain.SettingValue(kind, opt, args)
			if err != nil {
				return m, d.Errf("module %s: setting %s: %v", m.Name, opt, err)
			}
			settings[opt] = v
		}
	}
	if len(settings) > 0 {
		m.Settings, _ = json.Marshal(settings)
	}
	if err := chain.CheckSettings(kind, m.Settings); err != nil {
		d.Reset()
		d.Next()
		return m, d.Errf("module %s: %v", m.Name, err)
	}
	return m, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("%s takes exactly one value", opt)
	}
	*dst = args[0]
	return nil
}

func someArgs(d *caddyfile.Dispenser, dst *[]string) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("%s needs at least one value", opt)
	}
	*dst = append(*dst, args...)
	return nil
}
