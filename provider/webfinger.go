package provider

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// PathWebFinger is WebFinger (RFC 7033), at the root of the issuer's
// host whatever the issuer's path.
const PathWebFinger = "/.well-known/webfinger"

// relIssuer is OpenID Connect Discovery §2's issuer relation.
const relIssuer = "http://openid.net/specs/connect/1.0/issuer"

// webfinger answers issuer discovery (OIDC Discovery §2) for accounts and
// URLs on the issuer's host. It says the same for every account on the
// host, so it tells nobody which accounts exist.
func (p *Provider) webfinger(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, &oauthError{Code: "invalid_request", Description: "WebFinger takes GET", status: http.StatusMethodNotAllowed})
		return
	}
	q := r.URL.Query()
	resource := q.Get("resource")
	if resource == "" || len(q["resource"]) > 1 || len(resource) > maxParamBytes {
		writeJSONError(w, errInvalidRequest("one resource parameter is required (RFC 7033 §4.2)"))
		return
	}
	if !p.onIssuerHost(resource) {
		writeJSONError(w, &oauthError{Code: "not_found", Description: "this server answers for resources on its own host only", status: http.StatusNotFound})
		return
	}
	links := []map[string]string{}
	if rels := q["rel"]; len(rels) == 0 || slices.Contains(rels, relIssuer) {
		links = append(links, map[string]string{"rel": relIssuer, "href": p.cfg.Issuer})
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/jrd+json")
	noStore(w)
	w.WriteHeader(http.StatusOK)
	_ = jsonEncode(w, map[string]any{"subject": resource, "links": links})
}

// onIssuerHost reports whether a WebFinger resource (acct:user@host, an
// http(s) URL, or mailto:) names the issuer's host.
func (p *Provider) onIssuerHost(resource string) bool {
	iss, _ := url.Parse(p.cfg.Issuer)
	host := ""
	switch {
	case strings.HasPrefix(resource, "acct:"), strings.HasPrefix(resource, "mailto:"):
		_, after, _ := strings.Cut(resource, ":")
		at := strings.LastIndexByte(after, '@')
		if at <= 0 {
			return false
		}
		host = after[at+1:]
	default:
		u, err := url.Parse(resource)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" {
			return false
		}
		host = u.Host
	}
	return strings.EqualFold(host, iss.Host) || strings.EqualFold(host, iss.Hostname())
}
