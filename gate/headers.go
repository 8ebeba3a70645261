package gate

import (
	"net/http"
	"slices"
	"strings"
)

// Headers names the identity headers sent upstream. An empty name
// switches that header off.
type Headers struct {
	User   string `json:"user,omitempty"`
	Email  string `json:"email,omitempty"`
	Name   string `json:"name,omitempty"`
	Groups string `json:"groups,omitempty"`
	ACR    string `json:"acr,omitempty"`
	// Assertion, when set, carries a signed JWT about the user (audience:
	// the protected site's origin), verifiable with the IdP's JWKS.
	Assertion string `json:"assertion,omitempty"`
}

// DefaultHeaders are the usual Remote-* names; no assertion.
func DefaultHeaders() Headers {
	return Headers{User: "Remote-User", Email: "Remote-Email", Name: "Remote-Name", Groups: "Remote-Groups", ACR: "Remote-Acr"}
}

// reserved are the names stripped from every request: the configured
// ones, and the defaults even when renamed or switched off, so that no
// spoofed identity ever reaches an upstream.
func (h Headers) reserved() []string {
	var out []string
	d := DefaultHeaders()
	for _, n := range []string{h.User, h.Email, h.Name, h.Groups, h.ACR, h.Assertion,
		d.User, d.Email, d.Name, d.Groups, d.ACR, "X-Gatehouse-Assertion"} {
		if n != "" && !slices.ContainsFunc(out, func(o string) bool { return sameHeader(o, n) }) {
			out = append(out, n)
		}
	}
	return out
}

// sameHeader compares header names ignoring case and treating '_' like
// '-': "REMOTE_user" and "Remote-User" are the same header to many
// upstreams (CGI, PHP, WSGI). It does not allocate (hot path).
func sameHeader(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// strip removes every reserved header the client sent.
func strip(hdr http.Header, reserved []string) {
	for k := range hdr {
		for _, n := range reserved {
			if sameHeader(k, n) {
				delete(hdr, k)
				break
			}
		}
	}
}

// headerNames are a site's identity header names in canonical form ("":
// off), worked out once at Bind rather than on every request.
type headerNames struct{ user, email, name, groups, acr string }

func (h Headers) names() headerNames {
	c := func(n string) string {
		if n == "" {
			return ""
		}
		return http.CanonicalHeaderKey(n)
	}
	return headerNames{c(h.User), c(h.Email), c(h.Name), c(h.Groups), c(h.ACR)}
}

// set writes the identity of s into hdr, with one allocation for all
// the values.
func (n headerNames) set(hdr http.Header, s *Session) {
	vals := make([]string, 0, 5)
	for _, kv := range [5][2]string{{n.user, s.Username}, {n.email, s.Email}, {n.name, s.Name}, {n.groups, s.groups()}, {n.acr, s.ACR}} {
		if kv[0] != "" && kv[1] != "" {
			vals = append(vals, sanitize(kv[1]))
			hdr[kv[0]] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
}

// sanitize drops control characters so a value cannot split headers.
func sanitize(v string) string {
	if !strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}
