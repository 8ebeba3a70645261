package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/web"
)

// A RedirectModule's round trip: the attempt is stored, and a record
// under the hash of a random state value binds the way back to this
// attempt, browser and module, once.

const (
	keyLeave = "leave:" // + hash of the state: a redirect under way
	leaveTTL = 15 * time.Minute
	// resubmitted marks a callback form this engine posted again from
	// its own origin (see callback).
	resubmitted = "gatehouse_resubmitted"
	maxState    = 256
)

type leaveRecord struct {
	Attempt  string `json:"attempt"`
	Browser  string `json:"browser"`
	Module   string `json:"module"`
	Keep     []byte `json:"keep,omitempty"`
	Remember bool   `json:"remember,omitempty"`
}

// hashKey names a record by the hash of a bearer value (a state, a mailed
// token): the store never holds the value itself.
func hashKey(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// leave sends the browser to a RedirectModule's other site. The start
// counts against the address and account like a check; the callback
// settles it.
func (e *Engine) leave(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, rm RedirectModule) {
	ctx := r.Context()
	if _, ok := e.startCounted(w, r, a, n, nil); !ok {
		return
	}
	ttl := min(leaveTTL, a.Expires.Sub(e.opt.Sessions.Now()))
	if ttl <= 0 {
		e.fail(w, errAttemptGone)
		return
	}
	state := randomID()
	to, keep, err := rm.Redirect(ctx, a, state, e.origin+e.moduleBase(n.Name)+"/callback")
	if rej, ok := IsRejection(err); ok {
		e.showAttempt(w, r, a, n.Name, rej.Message)
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	if u, err := url.Parse(to); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		e.fail(w, fmt.Errorf("chain: module %q redirects to %q, which is no http(s) URL", n.Name, to))
		return
	}
	rec, _ := json.Marshal(leaveRecord{Attempt: a.ID, Browser: a.Browser, Module: n.Name, Keep: keep, Remember: r.PostForm.Get("remember") == "on"})
	if err := e.saveAttempt(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	if err := e.opt.Store.Create(ctx, keyLeave+hashKey(state), rec, ttl); err != nil {
		e.fail(w, fmt.Errorf("saving a redirect: %w", err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// callback takes the browser back from a RedirectModule's other site:
// the state must be one this engine gave, unused, to this browser for
// this module; then the module checks the answer.
func (e *Engine) callback(w http.ResponseWriter, r *http.Request, n *node, rm RedirectModule) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		web.Error(w, e.opt.StaticPath, http.StatusMethodNotAllowed, "Method not allowed", "This page accepts GET and POST only.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || len(r.Form) > 64 {
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "Bad request", "The answer from the other site could not be read.")
		return
	}
	if r.Method == http.MethodPost && r.PostForm.Get(resubmitted) == "" {
		// A POST from another site carries no SameSite=Lax cookie, so the
		// browser could not be recognised: post it again from here.
		fields := map[string]string{resubmitted: "1"}
		for k := range r.PostForm {
			fields[k] = r.PostForm.Get(k)
		}
		web.Render(w, http.StatusOK, "form_post.html", web.Page{Title: "Continue", Static: e.opt.StaticPath,
			Script: "form_post.js", FormAction: []string{"'self'"},
			Data: struct {
				Action string
				Fields map[string]string
			}{e.moduleBase(n.Name) + "/callback", fields}})
		return
	}
	ctx := r.Context()
	browser := e.opt.Sessions.BrowserID(w, r)
	state := r.Form.Get("state")
	key := keyLeave + hashKey(state)
	var rec leaveRecord
	b, err := e.opt.Store.Get(ctx, key)
	if err == nil && json.Unmarshal(b, &rec) != nil {
		err = errors.New("chain: a redirect record is corrupt")
	}
	switch {
	case state == "" || len(state) > maxState || errors.Is(err, store.ErrNotFound) || (err == nil && rec.Module != n.Name):
		// Unknown, used, expired, or given to another module (a mix-up):
		// a guess costs what a wrong password does.
		e.badLink(w, r, n, "callback with an unknown, used or foreign state")
		return
	case err != nil:
		e.fail(w, err)
		return
	case rec.Browser != browser:
		// Not spent: the browser that left may still come back with it.
		e.badLink(w, r, n, "callback in another browser than the one that left")
		return
	}
	if _, err := e.opt.Store.Take(ctx, key); errors.Is(err, store.ErrNotFound) {
		e.badLink(w, r, n, "callback with a state used meanwhile")
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	e.resume(w, r, rec.Attempt, browser, n, "", false, rec.Remember, func(a *Attempt) (Identity, error) {
		return rm.Callback(ctx, a, r, rec.Keep)
	})
}

// badLink answers a callback or a mailed link that is no good: audited,
// counted against the address like a wrong password, and the same page
// whatever was wrong.
func (e *Engine) badLink(w http.ResponseWriter, r *http.Request, n *node, why string) {
	g, ok := e.outsideGuard(w, r, "", n, true)
	if !ok {
		return
	}
	e.failed(r.Context(), g, nil, n, why)
	web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "This link is not valid",
		"The link has expired, was already used, or was opened in another browser than the one that asked for it. Go back to the application and sign in again.")
}

// outsideGuard works out who a step taken outside a sign-in page (a
// callback, a mailed link) tries — sub, else nobody known — and asks
// regulation whether it may run, counting it when count. It reports
// false when it has answered already.
func (e *Engine) outsideGuard(w http.ResponseWriter, r *http.Request, sub string, n *node, count bool) (guard, bool) {
	ctx := r.Context()
	g, err := e.guardFor(ctx, r, sub, n, nil)
	if err == nil && count {
		err = e.admit(ctx, g, nil, n)
	} else if err == nil {
		err = e.admissible(ctx, g, nil, n)
	}
	var b *blockedError
	if errors.As(err, &b) {
		tooManyAttempts(w, e.opt.StaticPath, b.after)
		return g, false
	} else if err != nil {
		e.fail(w, err)
		return g, false
	}
	return g, true
}
