package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/users/ldap"
)

// UserSourceConfig is a directory of people beside the local accounts
// (user federation): its people sign in with their password there and
// are imported as read-only accounts.
type UserSourceConfig struct {
	// Kind of source: ldap (LDAP or Active Directory).
	Kind string `json:"kind"`
	ldap.Settings
	// Timeout bounds each wait for a connection, each connection and
	// each request (5s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Recheck is how long the source's word on an account holds: after
	// it, a gate session or a refresh token of the account asks the
	// source again, and ends if the account is disabled or gone there
	// (1m).
	Recheck caddy.Duration `json:"recheck,omitempty"`
}

const defaultRecheck = time.Minute

// userSources opens the configured sources (they connect on first use)
// and returns the shortest recheck interval.
func (a *App) userSources() ([]users.Source, time.Duration, error) {
	repl := caddy.NewReplacer()
	recheck := time.Duration(0)
	var out []users.Source
	names := map[string]bool{}
	for _, c := range a.UserSources {
		if c.Kind != "ldap" {
			return nil, 0, fmt.Errorf("users: unknown kind of user source %q (supported: ldap)", c.Kind)
		}
		s := c.Settings
		s.URL, s.BindDN, s.BindPassword = repl.ReplaceKnown(s.URL, ""), repl.ReplaceKnown(s.BindDN, ""), repl.ReplaceKnown(s.BindPassword, "")
		src, err := ldap.New(s, time.Duration(c.Timeout))
		if err != nil {
			return nil, 0, fmt.Errorf("users ldap: %w", err)
		}
		a.ldapSources = append(a.ldapSources, src)
		if names[src.Name()] {
			return nil, 0, fmt.Errorf("users ldap: two sources are named %q: name them apart", src.Name())
		}
		names[src.Name()] = true
		out = append(out, src)
		r := time.Duration(c.Recheck)
		if r <= 0 {
			r = defaultRecheck
		}
		if recheck == 0 || r < recheck {
			recheck = r
		}
	}
	return out, recheck, nil
}

// closeUserSources closes what userSources opened.
func (a *App) closeUserSources() {
	for _, s := range a.ldapSources {
		_ = s.Close()
	}
	a.ldapSources = nil
}

// parseUserSource parses a users block:
//
//	users ldap [<name>] {
//		url ldaps://dc.acme.example[:636] | ldap://host   # ldap:// needs start_tls off loopback
//		start_tls
//		ca_file <pem file>
//		bind_dn <dn>
//		bind_password <password>            # e.g. {env.LDAP_PASSWORD}
//		base_dn <dn>
//		user_filter <filter with {login}>   # (&(objectClass=person)(|(uid={login})(mail={login})))
//		attributes {
//			id entryUUID  username uid  email mail  name cn
//			given_name givenName  family_name sn  groups memberOf
//		}
//		group_search { base_dn <dn>  filter <filter with {dn} or {login}>  name cn }
//		email_verified
//		pool <n>                             # 8
//		timeout <duration>                   # 5s
//		recheck <duration>                   # 1m
//	}
//
// The whole block is checked here; an error names the line of the
// setting at fault.
func parseUserSource(d *caddyfile.Dispenser) (UserSourceConfig, error) {
	blockAt := at(d)
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 || args[0] != "ldap" {
		return UserSourceConfig{}, d.Err("users ldap [<name>] { ... }: ldap is the kind of user source there is")
	}
	c := UserSourceConfig{Kind: "ldap"}
	if len(args) == 2 {
		c.Name = args[1]
	}
	lines := map[string]func(error) error{}
	str := map[string]*string{"url": &c.URL, "ca_file": &c.CAFile, "bind_dn": &c.BindDN, "bind_password": &c.BindPassword,
		"base_dn": &c.BaseDN, "user_filter": &c.UserFilter}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		lines[opt] = at(d)
		switch opt {
		case "url", "ca_file", "bind_dn", "bind_password", "base_dn", "user_filter":
			if err := oneArg(d, str[opt]); err != nil {
				return c, err
			}
		case "start_tls", "email_verified":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			*map[string]*bool{"start_tls": &c.StartTLS, "email_verified": &c.EmailVerified}[opt] = true
		case "pool":
			var v string
			if err := oneArg(d, &v); err != nil {
				return c, err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, d.Errf("pool must be a number, not %q", v)
			}
			c.Pool = n
		case "timeout", "recheck":
			var v string
			if err := oneArg(d, &v); err != nil {
				return c, err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < time.Second || dur > 24*time.Hour {
				return c, d.Errf("%s must be a duration from 1s to 24h, not %q", opt, v)
			}
			*map[string]*caddy.Duration{"timeout": &c.Timeout, "recheck": &c.Recheck}[opt] = caddy.Duration(dur)
		case "attributes":
			if err := parseAttributes(d, &c.Attributes, lines); err != nil {
				return c, err
			}
		case "group_search":
			g, err := parseGroupSearch(d, lines)
			if err != nil {
				return c, err
			}
			c.GroupSearch = g
		default:
			return c, d.Errf("unknown users ldap setting %q (url, start_tls, ca_file, bind_dn, bind_password, base_dn, user_filter, attributes, group_search, email_verified, pool, timeout, recheck)", opt)
		}
	}
	if err := withoutPlaceholders(c.Settings).Validate(); err != nil {
		// The message starts with the setting it is about.
		where, best := blockAt, ""
		for k, f := range lines {
			if strings.HasPrefix(err.Error(), k) && len(k) > len(best) {
				where, best = f, k
			}
		}
		return c, where(fmt.Errorf("users ldap: %v", err))
	}
	return c, nil
}

// withoutPlaceholders stands in for values taken from the environment
// at start ({env.LDAP_URL}), so that the rest can be checked here.
func withoutPlaceholders(s ldap.Settings) ldap.Settings {
	if strings.Contains(s.URL, "{") {
		s.URL, s.StartTLS = "ldaps://from-the-environment.invalid", false
	}
	if strings.Contains(s.BindDN, "{") {
		s.BindDN = "cn=from-the-environment"
	}
	return s
}

func parseAttributes(d *caddyfile.Dispenser, a *ldap.Attributes, lines map[string]func(error) error) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	dst := map[string]*string{"id": &a.ID, "username": &a.Username, "email": &a.Email, "name": &a.Name,
		"given_name": &a.GivenName, "family_name": &a.FamilyName, "groups": &a.Groups}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		p, ok := dst[opt]
		if !ok {
			return d.Errf("unknown attribute %q (id, username, email, name, given_name, family_name, groups)", opt)
		}
		lines["attributes "+opt] = at(d)
		if err := oneArg(d, p); err != nil {
			return err
		}
	}
	return nil
}

func parseGroupSearch(d *caddyfile.Dispenser, lines map[string]func(error) error) (*ldap.GroupSearch, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var g ldap.GroupSearch
	dst := map[string]*string{"base_dn": &g.BaseDN, "filter": &g.Filter, "name": &g.Name}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		p, ok := dst[opt]
		if !ok {
			return nil, d.Errf("unknown group_search setting %q (base_dn, filter, name)", opt)
		}
		lines["group_search "+opt] = at(d)
		if err := oneArg(d, p); err != nil {
			return nil, err
		}
	}
	return &g, nil
}
