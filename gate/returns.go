package gate

import (
	"net/url"
	"strings"
)

// maxReturn bounds a return address kept through a sign-in.
const maxReturn = 2048

// SafeReturn accepts only a path on this site: no scheme, no host, no
// protocol-relative "//", no backslashes, no control characters — also
// after percent-decoding. Every URL a gate puts in a Location header, a
// link or a form goes through it.
func SafeReturn(s string) (string, bool) {
	if s == "" {
		return "/", true
	}
	if len(s) > maxReturn {
		return "", false
	}
	for _, v := range []string{s, unescapeAll(s)} {
		if !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\") ||
			strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", false
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return s, true
}

// safeOrRoot is s when SafeReturn accepts it, else "/".
func safeOrRoot(s string) string {
	if v, ok := SafeReturn(s); ok {
		return v
	}
	return "/"
}

// unescapeAll percent-decodes repeatedly (double-encoding tricks).
func unescapeAll(s string) string {
	for range 3 {
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return d
		}
		s = d
	}
	return s
}
