package gate

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/web"
)

// logout serves /.gatehouse/logout: it ends this site's gate session
// (its upstream hook hears of it) and goes on to the provider's
// end-session endpoint, which ends the SSO session everywhere else.
//
// A cross-site request must not log anyone out (logout CSRF): a GET is
// acted on only when the browser says it is a top-level navigation from
// a page of this very site (Sec-Fetch-Site same-origin, Sec-Fetch-Mode
// navigate, Sec-Fetch-Dest document: a link the user clicked, not an
// image in user content, not a link from a mail); any other request gets
// a page whose button posts a CSRF-protected form.
func (g *Gate) logout(w http.ResponseWriter, r *http.Request, origin string) {
	browser := g.cfg.Cookies.BrowserID(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h := r.Header
		if h.Get("Sec-Fetch-Site") != "same-origin" || h.Get("Sec-Fetch-Mode") != "navigate" || h.Get("Sec-Fetch-Dest") != "document" {
			g.logoutForm(w, http.StatusOK, browser, origin, "Sign out?", "", "Do you want to sign out?")
			return
		}
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if r.ParseForm() != nil || !g.cfg.Cookies.CheckCSRF(browser, "gate-logout:"+origin, r.PostForm.Get("csrf")) {
			g.logoutForm(w, http.StatusForbidden, browser, origin, "Sign out?", "The sign-out form had expired.", "Do you want to sign out?")
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		g.page(w, http.StatusMethodNotAllowed, "Method not allowed", "Sign-out takes GET or POST.")
		return
	}
	ctx := r.Context()
	var idToken string
	if id := g.cookies.decode(r, origin); id != "" {
		s, err := g.load(ctx, id)
		if err == nil && s != nil {
			idToken = s.IDToken
			err = endSession(ctx, g.cfg.Store, g.cache, g.cfg.Queue, s)
		}
		if err != nil {
			g.cfg.Logger.Error("gatehouse gate: sign-out could not be recorded", "error", err)
			g.logoutForm(w, http.StatusServiceUnavailable, browser, origin, "Sign-out did not complete",
				"The sign-out could not be recorded, so you are still signed in. Please try again in a moment.", "Try to sign out again?")
			return
		}
	}
	g.cookies.clear(w)
	// Signing out here signs out everywhere: on to the provider's
	// end-session endpoint, which ends the SSO session and tells every
	// other application and gate.
	if _, err := g.oidcProvider(ctx); err == nil && g.endSess != "" {
		q := url.Values{"client_id": {g.cfg.ClientID}, "post_logout_redirect_uri": {origin + "/"}}
		if idToken != "" {
			q.Set("id_token_hint", idToken)
		}
		noStore(w)
		http.Redirect(w, r, g.endSess+"?"+q.Encode(), http.StatusFound)
		return
	}
	g.notice(w, http.StatusOK, "Signed out", "You are signed out of this site.", "/", "Continue")
}

// logoutForm shows a page whose button posts the sign-out with a CSRF
// token bound to this browser and site.
func (g *Gate) logoutForm(w http.ResponseWriter, status int, browser, origin, title, message, question string) {
	web.Render(w, status, "confirm.html", web.Page{Title: title, Static: staticPrefix, Message: message,
		Data: struct {
			Action, Question, Submit string
			Fields                   map[string]string
		}{PathLogout, question, "Sign out", map[string]string{"csrf": g.cfg.Cookies.CSRFToken(browser, "gate-logout:"+origin)}}})
}

const (
	// keyEnded marks an SSO session whose gate sessions were dropped; a
	// gate session for it is not saved any more.
	keyEnded = "gs-ended:"
	// endedTTL outlives any callback in flight when the session ended.
	endedTTL = time.Hour
)

// forget drops a gate session without telling its upstream (the same
// person signed in again on this site).
func (g *Gate) forget(ctx context.Context, id string) {
	s, _ := g.load(ctx, id)
	ops := []store.Op{store.Delete(keySession + id)}
	if s != nil {
		ops = append(ops, store.SetRemove(setBySubject+s.Subject, id))
		if s.SID != "" {
			ops = append(ops, store.SetRemove(setBySID+s.SID, id))
		}
	}
	_ = g.cfg.Store.Apply(ctx, ops...)
	g.cache.forget(ctx, id)
}

// endSession ends gate session s everywhere: its upstream hook's notice
// is queued first (so a crash cannot lose it), then the record and its
// indexes go in one write, then every instance drops it from its cache.
func endSession(ctx context.Context, st store.Store, c *cache, q *logout.Queue, s *Session) error {
	if s.UpstreamLogout != "" {
		if err := q.Enqueue(ctx, logout.Notice{URI: s.UpstreamLogout, Audience: s.Origin, Subject: s.Subject, SID: s.SID}); err != nil {
			return err
		}
	}
	ops := []store.Op{store.Delete(keySession + s.ID), store.SetRemove(setBySubject+s.Subject, s.ID)}
	if s.SID != "" {
		ops = append(ops, store.SetRemove(setBySID+s.SID, s.ID))
	}
	if err := st.Apply(ctx, ops...); err != nil {
		return err
	}
	c.forget(ctx, s.ID)
	return nil
}

// Sessions is the gates' side of logout: a logout.Party that ends the
// gate sessions of an ended SSO session (or of a user) on every site.
type Sessions struct {
	Store store.Store
	Now   func() time.Time
}

// SessionEnded implements logout.Party.
func (p Sessions) SessionEnded(ctx context.Context, e logout.Ended, q *logout.Queue) error {
	_, err := dropSessions(ctx, p.Store, q, e.SID, e.Subject, p.now())
	return err
}

func (p Sessions) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// dropSessions ends the gate sessions of an IdP session (sid), or all of
// a user's (sub) when sid is empty, and returns how many it ended.
func dropSessions(ctx context.Context, st store.Store, q *logout.Queue, sid, sub string, now time.Time) (int, error) {
	set := setBySID + sid
	if sid == "" {
		set = setBySubject + sub
	} else if err := st.Set(ctx, keyEnded+sid, []byte{1}, endedTTL); err != nil {
		// The tombstone keeps a gate session from being saved for this
		// SSO session after this point (a callback in flight).
		return 0, err
	}
	ids, err := st.SetMembers(ctx, set)
	if err != nil {
		return 0, err
	}
	c := sharedCache(st)
	n := 0
	for _, id := range ids {
		s, err := loadSession(ctx, st, id, now)
		if err != nil {
			return n, err
		}
		if s == nil {
			if err := st.SetRemove(ctx, set, id); err != nil {
				return n, err
			}
			c.forget(ctx, id)
			continue
		}
		if err := endSession(ctx, st, c, q, s); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

var _ logout.Party = Sessions{}
