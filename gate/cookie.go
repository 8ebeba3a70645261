package gate

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// cookieCodec signs gate cookies. The value is "<id>.<mac>" where the MAC
// covers the host, so a cookie copied to another protected host is
// refused. An HMAC is enough (the id is random and not secret from its
// holder) and costs about a microsecond on the hot path.
type cookieCodec struct {
	key    []byte
	name   string
	secure bool
}

const keyGateCookie = "keys:gate-cookie"

func newCookieCodec(ctx context.Context, st store.Store, secure bool) (*cookieCodec, error) {
	key := make([]byte, 32)
	if _, err := randRead(key); err != nil {
		return nil, err
	}
	err := st.Create(ctx, keyGateCookie, key, 0)
	if errors.Is(err, store.ErrExists) {
		key, err = st.Get(ctx, keyGateCookie)
	}
	if err != nil {
		return nil, fmt.Errorf("gate cookie key: %w", err)
	}
	name := "gatehouse-gate"
	if secure {
		name = "__Host-gatehouse-gate"
	}
	return &cookieCodec{key: key, name: name, secure: secure}, nil
}

func (c *cookieCodec) mac(host, id string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(strings.ToLower(host)))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// decode returns the session id in r's gate cookie for host, or "".
func (c *cookieCodec) decode(r *http.Request, host string) (string, error) {
	ck, err := r.Cookie(c.name)
	if err != nil {
		return "", nil
	}
	return c.verify(ck.Value, host), nil
}

// verify returns the session id of a cookie value for host, or "".
func (c *cookieCodec) verify(value, host string) string {
	id, mac, ok := strings.Cut(value, ".")
	if !ok || len(id) == 0 || len(id) > 64 || !hmac.Equal([]byte(mac), []byte(c.mac(host, id))) {
		return ""
	}
	return id
}

func (c *cookieCodec) set(w http.ResponseWriter, host, id string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: c.name, Value: id + "." + c.mac(host, id), Path: "/", Expires: expires,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (c *cookieCodec) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}
