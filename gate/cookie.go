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
	ck, err := r.Cookie(c.name)
	if err != nil {
		return ""
	}
	return c.verify(ck.Value, origin)
}

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
