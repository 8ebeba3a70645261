package chain

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Remember ("trust this browser"): a module with remember persistent or
// session is not asked again on this device while its record lives. A
// record is per user + device + module, is revocable (Forget), and dies
// with a password change. The device is a random id in a signed cookie:
// long-lived for persistent, a browser-session cookie for session.

const (
	keyRemember      = "remember:"
	setRememberUser  = "remember-user:"
	defaultRemember  = 30 * 24 * time.Hour
	sessionRemember  = 24 * time.Hour
	deviceCookieLife = 400 * 24 * time.Hour
)

type rememberRecord struct {
	Module            string    `json:"module"`
	Levels            []string  `json:"levels"`
	AMR               []string  `json:"amr,omitempty"`
	At                time.Time `json:"at"`
	PasswordChangedAt time.Time `json:"pwd_changed_at"`
}

func (e *Engine) deviceCookie(persistent bool) string {
	name := e.opt.Sessions.CookieName() + "-device"
	if !persistent {
		name += "-s"
	}
	return name
}

// device returns this browser's device id for a remember mode, setting
// the cookie when create is true and there is none.
func (e *Engine) device(w http.ResponseWriter, r *http.Request, persistent, create bool) string {
	name := e.deviceCookie(persistent)
	if c, err := r.Cookie(name); err == nil {
		id, mac, ok := strings.Cut(c.Value, ".")
		if ok && id != "" && e.opt.Sessions.Verify("device", id, mac) {
			return id
		}
	}
	if !create || w == nil {
		return ""
	}
	id := randomID()
	var life time.Duration // a browser-session cookie
	if persistent {
		life = deviceCookieLife
	}
	e.opt.Sessions.SetCookie(w, name, id+"."+e.opt.Sessions.Sign("device", id), life)
	return id
}

func rememberKey(sub, module, device string) string {
	return keyRemember + sub + ":" + module + ":" + device
}

// remember records that the attempt's user passed n on this device.
func (e *Engine) remember(ctx context.Context, w http.ResponseWriter, r *http.Request, a *Attempt, n *node, p session.Passed) error {
	if n.Remember == "" || n.Remember == RememberNone || a.Subject == "" {
		return nil
	}
	persistent := n.Remember == RememberPersistent
	dev := e.device(w, r, persistent, true)
	u, err := e.opt.Users.Get(ctx, a.Subject)
	if err != nil {
		return err
	}
	ttl := sessionRemember
	if persistent {
		ttl = n.RememberFor
		if ttl <= 0 {
			ttl = defaultRemember
		}
	}
	b, _ := json.Marshal(rememberRecord{Module: n.Name, Levels: p.Levels, AMR: p.AMR, At: p.At, PasswordChangedAt: u.PasswordChangedAt})
	if err := e.opt.Store.Set(ctx, rememberKey(a.Subject, n.Name, dev), b, ttl); err != nil {
		return err
	}
	return e.opt.Store.SetAdd(ctx, setRememberUser+a.Subject, n.Name+":"+dev)
}

// addRemembered adds to a the modules this device is trusted for.
func (e *Engine) addRemembered(ctx context.Context, r *http.Request, a *Attempt) error {
	if a.Subject == "" {
		return nil
	}
	var u *struct{ changed time.Time }
	for _, n := range e.nodes {
		if n.Remember == "" || n.Remember == RememberNone || n.Disabled {
			continue
		}
		if slices.ContainsFunc(a.Passed, func(p session.Passed) bool { return p.Module == n.Name }) {
			continue
		}
		dev := e.device(nil, r, n.Remember == RememberPersistent, false)
		if dev == "" {
			continue
		}
		key := rememberKey(a.Subject, n.Name, dev)
		b, err := e.opt.Store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		var rec rememberRecord
		if json.Unmarshal(b, &rec) != nil || rec.At.Before(a.Req.Since) {
			continue // too old for this request's max_age
		}
		if u == nil {
			usr, err := e.opt.Users.Get(ctx, a.Subject)
			if err != nil {
				return err
			}
			u = &struct{ changed time.Time }{usr.PasswordChangedAt}
		}
		if !rec.PasswordChangedAt.Equal(u.changed) {
			// The password changed since: this trust is void.
			_ = e.opt.Store.Delete(ctx, key)
			continue
		}
		a.Passed = append(a.Passed, session.Passed{Module: n.Name, Kind: n.Kind, Levels: rememberedLevels(n, rec.Levels), AMR: rec.AMR, At: rec.At})
	}
	return nil
}

// Forget revokes every remembered device of sub ("forget my devices").
func Forget(ctx context.Context, st store.Store, sub string) (int, error) {
	members, err := st.SetMembers(ctx, setRememberUser+sub)
	if err != nil {
		return 0, err
	}
	for _, m := range members {
		module, dev, _ := strings.Cut(m, ":")
		if err := st.Delete(ctx, rememberKey(sub, module, dev)); err != nil {
			return 0, err
		}
		if err := st.SetRemove(ctx, setRememberUser+sub, m); err != nil {
			return 0, err
		}
	}
	return len(members), nil
}
