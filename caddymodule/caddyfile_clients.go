package caddymodule

import (
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/provider"
)

func parseClient(d *caddyfile.Dispenser) (ClientConfig, error) {
	var c ClientConfig
	if !d.NextArg() {
		return c, d.Err("client needs an id")
	}
	c.ID = d.Val()
	if d.NextArg() {
		return c, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "name":
			if err := oneArg(d, &c.Name); err != nil {
				return c, err
			}
		case "secret":
			if err := oneArg(d, &c.Secret); err != nil {
				return c, err
			}
		case "public":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.Public = true
		case "redirect_uri", "redirect_uris":
			if err := someURIs(d, c.ID, &c.RedirectURIs); err != nil {
				return c, err
			}
		case "post_logout_redirect_uri", "post_logout_redirect_uris":
			if err := someURIs(d, c.ID, &c.PostLogoutRedirectURIs); err != nil {
				return c, err
			}
		case "scopes":
			if err := someArgs(d, &c.Scopes); err != nil {
				return c, err
			}
		case "token_endpoint_auth_method":
			if err := oneArg(d, &c.TokenEndpointAuthMethod); err != nil {
				return c, err
			}
		case "backchannel_logout_uri":
			if err := oneArg(d, &c.BackchannelLogoutURI); err != nil {
				return c, err
			}
		case "frontchannel_logout_uri":
			if err := oneArg(d, &c.FrontchannelLogoutURI); err != nil {
				return c, err
			}
		case "frontchannel_logout_session_required":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.FrontchannelLogoutSessionRequired = true
		case "first_party":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.FirstParty = true
		case "resource_server":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.ResourceServer = true
		case "grant_types":
			if err := someArgs(d, &c.GrantTypes); err != nil {
				return c, err
			}
		case "response_types":
			if err := someArgs(d, &c.ResponseTypes); err != nil {
				return c, err
			}
		case "subject_type":
			if err := oneArg(d, &c.SubjectType); err != nil {
				return c, err
			}
		case "sector_identifier_uri":
			if err := oneArg(d, &c.SectorIdentifierURI); err != nil {
				return c, err
			}
		case "userinfo_signed_response_alg":
			if err := oneArg(d, &c.UserinfoSignedResponseAlg); err != nil {
				return c, err
			}
		case "jwks":
			if err := parseJWKS(d, &c); err != nil {
				return c, err
			}
		case "jwks_uri":
			if err := oneArg(d, &c.JWKSURI); err != nil {
				return c, err
			}
		case "token_endpoint_auth_signing_alg":
			if err := oneArg(d, &c.TokenEndpointAuthSigningAlg); err != nil {
				return c, err
			}
		case "request_object_signing_alg":
			if err := oneArg(d, &c.RequestObjectSigningAlg); err != nil {
				return c, err
			}
		case "request_uris", "request_uri":
			if err := someArgs(d, &c.RequestURIs); err != nil {
				return c, err
			}
		case "require_pushed_authorization_requests":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.RequirePushedAuthorizationRequests = true
		default:
			return c, d.Errf("client %s: unknown option %q", c.ID, opt)
		}
	}
	switch {
	case c.Public && c.Secret != "":
		return c, d.Errf("client %s: a public client cannot have a secret", c.ID)
	case !c.Public && c.Secret == "" && c.TokenEndpointAuthMethod != provider.AuthPrivateKeyJWT:
		return c, d.Errf("client %s: needs a secret (or `public` for apps that cannot keep one, or private_key_jwt with jwks)", c.ID)
	case c.TokenEndpointAuthMethod == provider.AuthPrivateKeyJWT && len(c.JWKS) == 0 && c.JWKSURI == "":
		return c, d.Errf("client %s: private_key_jwt needs jwks or jwks_uri", c.ID)
	case len(c.RedirectURIs) == 0 && (len(c.GrantTypes) == 0 || slices.Contains(c.GrantTypes, provider.GrantAuthorizationCode) || slices.Contains(c.GrantTypes, "implicit")):
		return c, d.Errf("client %s: needs at least one redirect_uri", c.ID)
	}
	return c, nil
}

// parseJWKS reads `jwks <JWK set>`: the set inline (a JSON object, in
// backquotes) or the path of a file holding it, read when the Caddyfile
// is adapted. Only public keys are accepted.
func parseJWKS(d *caddyfile.Dispenser, c *ClientConfig) error {
	var arg string
	if err := oneArg(d, &arg); err != nil {
		return err
	}
	raw := []byte(arg)
	if !strings.HasPrefix(strings.TrimSpace(arg), "{") {
		b, err := os.ReadFile(arg)
		if err != nil {
			return d.Errf("client %s: jwks: %v", c.ID, err)
		}
		raw = b
	}
	if err := provider.ValidateClientJWKS(raw); err != nil {
		return d.Errf("client %s: jwks: %v", c.ID, err)
	}
	c.JWKS = raw
	return nil
}

// parseScope reads an admin-defined scope:
//
//	scope <name> {
//		description <text>
//		claims <claim>...
//	}
func parseScope(d *caddyfile.Dispenser) (provider.Scope, error) {
	var sc provider.Scope
	if !d.NextArg() {
		return sc, d.Err("scope needs a name")
	}
	sc.Name = d.Val()
	if d.NextArg() {
		return sc, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "description":
			if err := oneArg(d, &sc.Description); err != nil {
				return sc, err
			}
		case "claims", "claim":
			if err := someArgs(d, &sc.Claims); err != nil {
				return sc, err
			}
		default:
			return sc, d.Errf("scope %s: unknown option %q", sc.Name, opt)
		}
	}
	if len(sc.Claims) == 0 {
		return sc, d.Errf("scope %s: needs claims (the user attributes it releases)", sc.Name)
	}
	return sc, nil
}

// someURIs reads redirect URIs, each checked where it is written
// (placeholders are checked once replaced, at start).
func someURIs(d *caddyfile.Dispenser, client string, dst *[]string) error {
	if err := someArgs(d, dst); err != nil {
		return err
	}
	for _, u := range *dst {
		if strings.Contains(u, "{") {
			continue
		}
		if err := provider.ValidateRedirectURI(u); err != nil {
			return d.Errf("client %s: %v", client, err)
		}
	}
	return nil
}
