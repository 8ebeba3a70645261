package gate

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// verify answers a forward-auth subrequest (nginx auth_request, Traefik
// ForwardAuth, Caddy forward_auth). The proxy passes the user's request
// in X-Forwarded-{Method,Proto,Host,Uri} with the user's cookies; the
// query of the verify URL may tighten the policy, in the same words as
// the Caddyfile: acr, max_age, allow_user, allow_group, deny_user,
// deny_group.
//
// 2xx answers have an empty body and carry the identity headers, for the
// proxy to copy upstream. Otherwise the answer is the redirect (or 401)
// the user should get.
func (g *Gate) verify(w http.ResponseWriter, r *http.Request, b *bound) {
	var q url.Values // nil reads as empty
	if r.URL.RawQuery != "" {
		q = r.URL.Query()
	}
	extra, err := policyFromQuery(q)
	if err != nil {
		g.page(w, http.StatusBadRequest, "Bad gate configuration", err.Error())
		return
	}
	orig, err := forwardedRequest(r)
	if err != nil {
		g.page(w, http.StatusBadRequest, "Bad forward-auth request", err.Error())
		return
	}
	// The path the proxy will pass upstream: one spelling only, as in
	// front of an in-Caddy gate.
	p, err := CanonicalPath(orig.URL.EscapedPath())
	if err != nil {
		RefusePath(w, err)
		return
	}
	// nginx auth_request understands only 2xx, 401 and 403: with
	// redirect=off every missing login is a 401 (nginx then sends the
	// browser to /.gatehouse/login with error_page).
	if q.Get("redirect") == "off" {
		orig.Header = orig.Header.Clone()
		orig.Header.Del("Accept")
	}
	origin, ok := b.origin(orig)
	if !ok {
		g.page(w, http.StatusForbidden, "Unknown site", "This sign-in gate is not configured for this host name and port.")
		return
	}
	if g.cfg.Policy.Bypassed(p) {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	// Identity headers go into the response, which the proxy copies.
	resp := http.Header{}
	sub := &http.Request{Header: resp}
	sub = sub.WithContext(r.Context())
	policies := []*Policy{&g.cfg.Policy}
	if len(q) > 0 {
		policies = append(policies, &extra)
	}
	if _, handled := g.enforce(w, sub, orig, b, origin, policies...); handled {
		return
	}
	for k, v := range resp {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// forwardedRequest rebuilds the user's request from the proxy's headers.
func forwardedRequest(r *http.Request) (*http.Request, error) {
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	uri := r.Header.Get("X-Forwarded-Uri")
	if uri == "" {
		uri = "/"
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || strings.ContainsAny(host, "/\\ ") {
		return nil, errBadForward
	}
	method := r.Header.Get("X-Forwarded-Method")
	if method == "" {
		method = http.MethodGet
	}
	// A shallow copy: the gate only reads the headers (a caller that
	// changes them clones them first).
	orig := r.WithContext(r.Context())
	orig.Method, orig.Host, orig.URL, orig.RequestURI = method, host, u, uri
	orig.TLS = nil
	if r.Header.Get("X-Forwarded-Proto") == "https" {
		orig.TLS = r.TLS
		if orig.TLS == nil {
			orig.TLS = fakeTLS
		}
	}
	return orig, nil
}

type gateError string

func (e gateError) Error() string { return string(e) }

const errBadForward = gateError("X-Forwarded-Host or X-Forwarded-Uri is malformed")

// policyFromQuery reads the requirements the verify URL's query adds.
// They come on top of the gate's own policy, never instead of it: a
// request passes only when both pass (the proxy may keep the client's
// query string in the verify URL, so the query can only tighten).
func policyFromQuery(q url.Values) (Policy, error) {
	var p Policy
	if v := q["acr"]; len(v) > 0 {
		p.ACR = strings.Fields(strings.Join(v, " "))
	}
	if v := q.Get("max_age"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, gateError("max_age must be a positive duration such as 15m")
		}
		p.MaxAge = d
	}
	split := func(k string) []string {
		return strings.FieldsFunc(strings.Join(q[k], ","), func(r rune) bool { return r == ',' || r == ' ' })
	}
	p.AllowUsers, p.AllowGroups = split("allow_user"), split("allow_group")
	p.DenyUsers, p.DenyGroups = split("deny_user"), split("deny_group")
	return p, p.Validate()
}
