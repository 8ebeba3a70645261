package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/gatehouse-idp/gatehouse/gate"
	"github.com/gatehouse-idp/gatehouse/provider"
)

// When Caddy has provisioned every app, the gates learn where they are:
// the origins of the sites they are on (host matchers × the server's
// scheme and ports) or their `hosts`, and the site gate whose settings a
// route gate inherits. The local gates' redirect URIs are then exactly
// those origins' callbacks: registered from the configuration, never
// from a request's Host header.

// placement is one place a gate handler sits in the server config.
type placement struct {
	hosts  []string // host matchers in force (nil: any host)
	scheme string   // "http" or "https", on ports
	ports  []string
	parent *Gate // the nearest gate before it that applies to every request here
}

// bindGates binds every gate of this config and registers the local
// gates' client.
func (a *App) bindGates() error {
	if len(a.gates) == 0 {
		return a.registerGateClient(nil)
	}
	v, err := a.ctx.AppIfConfigured("http")
	if err != nil {
		return nil
	}
	httpApp, ok := v.(*caddyhttp.App)
	if !ok {
		return nil
	}
	var order []*Gate
	var walk func(routes caddyhttp.RouteList, hosts []string, scheme string, ports []string, parent *Gate)
	walk = func(routes caddyhttp.RouteList, hosts []string, scheme string, ports []string, parent *Gate) {
		for _, rt := range routes {
			eff := hosts
			if hs := routeHosts(rt.MatcherSets); hs != nil {
				eff = hs
			}
			everyRequest := len(rt.MatcherSets) == 0 && rt.Group == ""
			for _, hd := range rt.Handlers {
				switch x := hd.(type) {
				case *Gate:
					if len(x.places) == 0 {
						order = append(order, x)
					}
					x.places = append(x.places, placement{hosts: eff, scheme: scheme, ports: ports, parent: parent})
					if everyRequest {
						parent = x
					}
				case *caddyhttp.Subroute:
					walk(x.Routes, eff, scheme, ports, parent)
				}
			}
		}
	}
	for _, srv := range httpApp.Servers {
		scheme := "http"
		if len(srv.TLSConnPolicies) > 0 {
			scheme = "https"
		}
		var ports []string
		for _, l := range srv.Listen {
			na, err := caddy.ParseNetworkAddress(l)
			if err != nil {
				continue
			}
			for p := na.StartPort; p <= na.EndPort; p++ {
				ports = append(ports, strconv.FormatUint(uint64(p), 10))
			}
		}
		walk(srv.Routes, nil, scheme, ports, nil)
	}
	// Every gate strips every identity header any gate sends: a name one
	// route gate uses must not be forgeable on the rest of the site.
	sites := map[*Gate]gate.Site{}
	var strip []string
	for _, g := range order {
		site, err := g.site()
		if err != nil {
			return err
		}
		sites[g] = site
		h := site.Headers
		strip = append(strip, h.User, h.Email, h.Name, h.Groups, h.ACR, h.Assertion)
	}
	var local []string
	for _, g := range order {
		site := sites[g]
		site.Strip = strip
		if err := g.gate.Bind(site); err != nil {
			return fmt.Errorf("gatehouse_gate: %w", err)
		}
		if g.Issuer == "" {
			local = append(local, g.gate.Origins()...)
		} else {
			var cbs []string
			for _, o := range g.gate.Origins() {
				cbs = append(cbs, o+gate.PathCallback)
			}
			a.logger.Info("gatehouse gate with an external provider: register these redirect URIs there",
				"issuer", g.Issuer, "client_id", g.ClientID, "redirect_uris", cbs)
		}
	}
	return a.registerGateClient(local)
}

// site works out a gate's Site from where it sits: origins, and the
// headers and upstream hook it has or inherits.
func (h *Gate) site() (gate.Site, error) {
	var s gate.Site
	for _, p := range h.places {
		origins, err := h.origins(p)
		if err != nil {
			return s, err
		}
		for _, o := range origins {
			if !slices.Contains(s.Origins, o) {
				s.Origins = append(s.Origins, o)
			}
		}
	}
	s.Headers, s.UpstreamLogout = h.inherited()
	return s, nil
}

// inherited returns the headers and upstream hook in force for h: its
// own, else those of the gate it sits under (a route gate under the
// site gate), else the defaults.
func (h *Gate) inherited() (gate.Headers, string) {
	headers, hook := h.Headers, h.UpstreamLogout
	depth := 0
	for p := parentOf(h.places); p != nil && (headers == nil || hook == "") && depth < 16; p = parentOf(p.places) {
		depth++
		if headers == nil {
			headers = p.Headers
		}
		if hook == "" {
			hook = p.UpstreamLogout
		}
	}
	if headers == nil {
		d := gate.DefaultHeaders()
		headers = &d
	}
	return *headers, hook
}

func parentOf(places []placement) *Gate {
	for _, p := range places {
		if p.parent != nil {
			return p.parent
		}
	}
	return nil
}

// origins are the origins of one placement: `hosts` when given, else
// the site's host names, on the server's scheme and ports.
func (h *Gate) origins(p placement) ([]string, error) {
	names := h.Hosts
	if len(names) == 0 {
		if len(p.hosts) == 0 {
			return nil, errors.New("gatehouse_gate is on a site that answers any host name: name the site's hosts, or list them with `hosts`")
		}
		names = p.hosts
	}
	var out []string
	for _, n := range names {
		if strings.Contains(n, "://") {
			o, err := gate.CanonicalOrigin(n)
			if err != nil {
				return nil, fmt.Errorf("gatehouse_gate hosts: %w", err)
			}
			out = append(out, o)
			continue
		}
		if strings.Contains(n, "*") {
			return nil, fmt.Errorf("gatehouse_gate: %q: a gate needs exact host names (its callback URL is registered in advance), not wildcards", n)
		}
		if h.ForwardAuth {
			// The protected site is behind another proxy: HTTPS on its
			// default port unless the origin is spelled out.
			o, err := gate.CanonicalOrigin("https://" + n)
			if err != nil {
				return nil, fmt.Errorf("gatehouse_gate hosts: %w", err)
			}
			out = append(out, o)
			continue
		}
		for _, port := range p.ports {
			o, err := gate.CanonicalOrigin(p.scheme + "://" + n + ":" + port)
			if err != nil {
				return nil, fmt.Errorf("gatehouse_gate: site %s: %w", n, err)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// registerGateClient makes the local gates' client a static client of
// the provider with exactly these origins' callbacks: it lives in the
// configuration of every instance, not in the store, so a flushed store
// loses nothing.
func (a *App) registerGateClient(origins []string) error {
	// Versions before this one kept the gates' client in the store, with
	// redirect URIs taken from requests: it must not linger as a fallback.
	if err := a.clients.Delete(context.Background(), localGateClient); err != nil {
		return err
	}
	slices.Sort(origins)
	origins = slices.Compact(origins)
	// The gates are Gatehouse itself: nobody is asked to consent to them.
	c := provider.Client{ID: localGateClient, Name: "Sites behind the gate", NamedBySite: true, Public: true,
		ClientSettings: provider.ClientSettings{FirstParty: true}}
	for _, o := range origins {
		c.RedirectURIs = append(c.RedirectURIs, o+gate.PathCallback)
		c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, o+"/")
	}
	if len(origins) == 0 {
		a.clients.RemoveStatic(localGateClient)
		return nil
	}
	return a.clients.SetStatic(c)
}

// routeHosts returns the host names a route's matchers limit it to, or
// nil when some matcher set does not limit the host.
func routeHosts(sets caddyhttp.MatcherSets) []string {
	if len(sets) == 0 {
		return nil
	}
	var out []string
	for _, set := range sets {
		found := false
		for _, m := range set {
			if mh, ok := m.(*caddyhttp.MatchHost); ok {
				out = append(out, *mh...)
				found = true
			}
		}
		if !found {
			return nil
		}
	}
	return out
}
