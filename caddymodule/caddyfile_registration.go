package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/provider"
)

// RegistrationConfig is dynamic client registration (OpenID Connect
// Dynamic Client Registration 1.0, RFC 7591; management by the clients
// themselves, RFC 7592).
type RegistrationConfig struct {
	// Policy is off (default: no registration endpoint), open (anyone
	// may register a client) or initial_access_token (a registration
	// needs a token made with `caddy gatehouse client token create`).
	Policy string `json:"policy"`
	// PerIP bounds the registration requests of one client address per
	// hour (default 20).
	PerIP int `json:"per_ip,omitempty"`
	// MaxClients bounds the clients registered in all (default 10000).
	MaxClients int `json:"max_clients,omitempty"`
	// PrivateNetworks lets registered clients' URLs (jwks_uri,
	// request_uris, sector_identifier_uri, backchannel_logout_uri) reach
	// private addresses: for an intranet whose applications register
	// themselves. Off, Gatehouse fetches and posts only to public
	// addresses for them.
	PrivateNetworks bool `json:"private_networks,omitempty"`
}

// parseRegistration parses
//
//	registration off|open|initial_access_token {
//		per_ip <n>
//		max_clients <n>
//		private_networks
//	}
func parseRegistration(d *caddyfile.Dispenser) (RegistrationConfig, error) {
	var rc RegistrationConfig
	if err := oneArg(d, &rc.Policy); err != nil {
		return rc, err
	}
	switch rc.Policy {
	case provider.RegistrationOff, provider.RegistrationOpen, provider.RegistrationInitialAccessToken:
	default:
		return rc, d.Errf("registration must be off, open or initial_access_token, not %q", rc.Policy)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt == "private_networks" {
			if d.NextArg() {
				return rc, d.ArgErr()
			}
			rc.PrivateNetworks = true
			continue
		}
		var v string
		if err := oneArg(d, &v); err != nil {
			return rc, err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return rc, d.Errf("registration %s must be a positive number, not %q", opt, v)
		}
		switch opt {
		case "per_ip":
			rc.PerIP = n
		case "max_clients":
			rc.MaxClients = n
		default:
			return rc, d.Errf("unknown registration option %q (per_ip, max_clients, private_networks)", opt)
		}
	}
	return rc, nil
}
