package gate

import (
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/browser"
)

// cookieCodec signs gate cookies. The value is "<id>.<mac>" where the MAC
// covers the origin, so a cookie copied to another protected site (or
// another port or scheme of the same name) is refused. An HMAC is enough
// (the id is random and not secret from its holder) and costs about a
// microsecond on the hot path; the keys are the browser state's, shared
// by every instance and synced through the store.
type cookieCodec struct {
	keys *browser.State
	name string
}

func newCookieCodec(keys *browser.State) *cookieCodec {
	return &cookieCodec{keys: keys, name: keys.CookieName() + "-gate"}
}

const purposeCookie = "gate-session"

// decode returns the session id in r's gate cookie for origin, or "".
func (c *cookieCodec) decode(r *http.Request, origin string) string {
	v, ok := cookieValue(r.Header, c.name)
	if !ok {
		return ""
	}
	return c.verify(v, origin)
}

// cookieValue finds the first cookie called name whose value is in the
// alphabet of gate cookies (base64url and '.', optionally quoted)
// without parsing every cookie into a new value (http.Request.Cookie
// allocates for each; this runs on every request). Any other value
// cannot verify anyway: it is skipped.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			n, v, ok := strings.Cut(trimSpace(part), "=")
			if !ok || trimSpace(n) != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if cookieAlphabet(v) {
				return v, true
			}
		}
	}
	return "", false
}

// trimSpace trims what net/http trims around cookies and their names.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// cookieAlphabet tells a non-empty value of base64url and '.' only.
func cookieAlphabet(v string) bool {
	for i := 0; i < len(v); i++ {
		if !cookieByte[v[i]] {
			return false
		}
	}
	return v != ""
}

var cookieByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	return t
}()

// verify returns the session id of a cookie value for origin, or "".
func (c *cookieCodec) verify(value, origin string) string {
	id, mac, ok := strings.Cut(value, ".")
	if !ok || len(id) == 0 || len(id) > 64 || !c.keys.Verify(purposeCookie, origin+"\x00"+id, mac) {
		return ""
	}
	return id
}

func (c *cookieCodec) set(w http.ResponseWriter, origin, id string, life time.Duration) {
	c.keys.SetCookie(w, c.name, id+"."+c.keys.Sign(purposeCookie, origin+"\x00"+id), life)
}

func (c *cookieCodec) clear(w http.ResponseWriter) { c.keys.SetCookie(w, c.name, "", -1) }
