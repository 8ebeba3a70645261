package caddymodule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/console"
	"github.com/gatehouse-idp/gatehouse/provider"
)

// ConsoleConfig is the admin console at <issuer>/admin. It is on by
// default: only members of Group whose session reaches ACR, signed in
// within MaxAge, get in, so with nobody in the group nobody does.
type ConsoleConfig struct {
	// Off turns the console off (/admin answers 404).
	Off bool `json:"off,omitempty"`
	// Group may use the console; default "admins".
	Group string `json:"group,omitempty"`
	// ACR is the level an admin's session must reach; default "2". Set
	// explicitly, it must be a level of the chain.
	ACR string `json:"acr,omitempty"`
	// MaxAge is how recent an admin's sign-in must be; default 15m.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// AuditEvents is how many recent audit events each instance keeps
	// for the audit page; default 1000.
	AuditEvents int `json:"audit_events,omitempty"`

	// acrAt places an error about acr at its Caddyfile line.
	acrAt func(error) error
}

// parseConsole parses:
//
//	admin_console off
//	admin_console {
//		group <group>          # admins
//		acr <level>            # 2
//		max_age <duration>     # 15m
//		audit_events <n>       # 1000
//	}
func (a *App) parseConsole(d *caddyfile.Dispenser) error {
	if a.AdminConsole != nil {
		return d.Err("admin_console is configured twice")
	}
	cc := &ConsoleConfig{}
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return d.Errf("admin_console takes a block, or off")
		}
		cc.Off = true
		a.AdminConsole = cc
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		v := d.Val()
		switch opt {
		case "group":
			if strings.ContainsAny(v, ", \t") {
				return d.Errf("admin_console: bad group name %q", v)
			}
			cc.Group = v
		case "acr":
			cc.ACR, cc.acrAt = v, at(d)
		case "max_age":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("admin_console: max_age %q is not a positive duration", v)
			}
			cc.MaxAge = caddy.Duration(dur)
		case "audit_events":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000000 {
				return d.Errf("admin_console: audit_events %q is not a number from 1 to 1000000", v)
			}
			cc.AuditEvents = n
		default:
			return d.Errf("admin_console: unknown setting %q", opt)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	a.AdminConsole = cc
	return nil
}

// checkConsoleLevel refuses, at adapt, an admin_console acr that no
// module of the chain grants (checked again at provision).
func (a *App) checkConsoleLevel() error {
	cc := a.AdminConsole
	if cc == nil || cc.ACR == "" || cc.acrAt == nil {
		return nil
	}
	levels := []string{}
	for _, m := range a.Chain {
		for _, l := range m.Levels {
			if !slices.Contains(levels, l) {
				levels = append(levels, l)
			}
		}
	}
	if len(a.Chain) == 0 {
		levels = chain.DefaultConfig().Modules[0].Levels
	}
	if !slices.Contains(levels, cc.ACR) {
		return cc.acrAt(fmt.Errorf("admin_console: acr %q is not a level of the chain (levels: %s): use one of them, or give the chain a module of that level",
			cc.ACR, strings.Join(levels, ", ")))
	}
	return nil
}

// provisionConsole builds the admin operations and, unless it is off,
// the console the provider serves; the operations get the provider once
// it exists (setProvider).
func (a *App) provisionConsole() (*console.Console, error) {
	a.admin = &admin.Service{Store: a.store, Users: a.users, Sessions: a.sessions, Logout: a.logout, Clients: a.clients,
		Keys: a.keys, Chain: a.chain, Regulate: a.regulate, Audit: a.audit,
		KeepSessionsOnPasswordChange: a.KeepSessionsOnPasswordChange}
	cc := a.AdminConsole
	if cc == nil {
		cc = &ConsoleConfig{}
	}
	if cc.Off {
		return nil, nil
	}
	if cc.ACR != "" && !slices.Contains(a.chain.Levels(), cc.ACR) {
		return nil, fmt.Errorf("gatehouse: admin_console: acr %q is not a level of the chain (levels: %s)", cc.ACR, strings.Join(a.chain.Levels(), ", "))
	}
	recent := console.NewRecent(cc.AuditEvents, time.Now)
	a.audit.Subscribe(recent.Observe)
	prefix, err := provider.PathPrefix(a.Issuer)
	if err != nil {
		return nil, err
	}
	return console.New(console.Config{Prefix: prefix, Static: provider.StaticPath(a.Issuer), Sessions: a.sessions,
		Users: a.users, Chain: a.chain, Admin: a.admin, Recent: recent, Group: cc.Group, ACR: cc.ACR,
		MaxAge: time.Duration(cc.MaxAge), Logger: a.logger})
}
