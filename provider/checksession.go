package provider

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// OpenID Connect Session Management 1.0: authorization responses carry
// session_state, and the check_session_iframe lets a relying party ask,
// from JavaScript, whether the OP browser state changed (a sign-in or
// sign-out) without a round trip.

// PathCheckSession is the check_session_iframe.
const PathCheckSession = "/check_session"

// browserStateCookie is readable by the iframe's script (not HttpOnly);
// it holds no secret, only a random value that changes at every sign-in
// and sign-out.
func (p *Provider) browserStateCookie() string { return p.cfg.Sessions.CookieName() + "-bs" }

// browserState returns the OP browser state, creating one when absent.
func (p *Provider) browserState(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(p.browserStateCookie()); err == nil && c.Value != "" {
		return c.Value
	}
	return p.newBrowserState(w, r)
}

// newBrowserState sets a fresh OP browser state (the state changed). r,
// when not nil, sees the new value for the rest of this request.
func (p *Provider) newBrowserState(w http.ResponseWriter, r *http.Request) string {
	v := randomToken()
	c := &http.Cookie{Name: p.browserStateCookie(), Value: v, Path: "/", Secure: p.cfg.Sessions.Secure(), SameSite: http.SameSiteLaxMode}
	if c.Secure {
		// Read inside the RP's page (a third-party iframe).
		c.SameSite = http.SameSiteNoneMode
	}
	http.SetCookie(w, c)
	if r != nil {
		cookies := r.Cookies()
		r.Header.Del("Cookie")
		for _, o := range cookies {
			if o.Name != c.Name {
				r.AddCookie(o)
			}
		}
		r.AddCookie(&http.Cookie{Name: c.Name, Value: v})
	}
	return v
}

// SessionState computes session_state (Session Management §3).
func SessionState(clientID, origin, browserState, salt string) string {
	h := sha256.Sum256([]byte(clientID + " " + origin + " " + browserState + " " + salt))
	return base64.RawURLEncoding.EncodeToString(h[:]) + "." + salt
}

// originOf is the RFC 6454 origin of a URL, serialised as browsers do
// (and so as the RP's iframe sees it in postMessage): scheme and host
// lowercased, the default port dropped, IPv6 in brackets; "" for URLs
// without an http(s) origin.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "" // other schemes have opaque origins
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return ""
	}
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// checkSession serves the OP iframe.
func (p *Provider) checkSession(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Embedded by relying parties: framing allowed, scripts only ours.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; frame-ancestors *")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(`<!doctype html><html data-cookie="` + p.browserStateCookie() + `"><head><meta charset="utf-8"><title>Gatehouse session check</title>` +
		`<script src="` + p.staticPath() + `/check_session.js"></script></head><body></body></html>`))
}
