package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

func init() {
	caddy.RegisterModule(IDP{})
	httpcaddyfile.RegisterHandlerDirective("gatehouse_idp", parseIDP)
	// The IdP answers every path below the issuer (404 for unknown ones),
	// so it sits with the terminal handlers, before abort/respond.
	httpcaddyfile.RegisterDirectiveOrder("gatehouse_idp", httpcaddyfile.Before, "abort")
}

// IDP serves the gatehouse app's OpenID Connect provider on a site.
// Requests outside the issuer's path go to the next handler.
type IDP struct {
	provider *provider.Provider
	prefix   string
}

// CaddyModule returns the Caddy module information.
func (IDP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.gatehouse_idp", New: func() caddy.Module { return new(IDP) }}
}

// Provision finds the gatehouse app.
func (h *IDP) Provision(ctx caddy.Context) error {
	app, err := gatehouseApp(ctx, "gatehouse_idp")
	if err != nil {
		return err
	}
	h.provider = app.Provider()
	h.prefix, _ = provider.PathPrefix(app.Issuer)
	return nil
}

// gatehouseApp returns the configured gatehouse app, with a clear error
// when the global options have none.
func gatehouseApp(ctx caddy.Context, who string) (*App, error) {
	v, err := ctx.AppIfConfigured("gatehouse")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, fmt.Errorf("%s: configure the gatehouse app first (a `gatehouse { issuer … }` block in the global options)", who)
	} else if err != nil {
		return nil, err
	}
	return v.(*App), nil
}

// ServeHTTP serves the provider.
func (h *IDP) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.prefix != "" && r.URL.Path != h.prefix && !strings.HasPrefix(r.URL.Path, h.prefix+"/") {
		return next.ServeHTTP(w, r)
	}
	// The client address Caddy determined (honouring trusted_proxies),
	// for regulation and the audit trail: never a raw X-Forwarded-For.
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		r = r.WithContext(regulate.WithClientIP(r.Context(), ip))
	}
	h.provider.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile: `gatehouse_idp` takes no arguments.
func (h *IDP) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("gatehouse_idp takes no options (configure the gatehouse app in the global options)")
	}
	return nil
}

func parseIDP(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m IDP
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return &m, err
}

var (
	_ caddy.Provisioner           = (*IDP)(nil)
	_ caddyhttp.MiddlewareHandler = (*IDP)(nil)
	_ caddyfile.Unmarshaler       = (*IDP)(nil)
)
