package chain

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/web"
)

// finish turns a completed attempt into the SSO session and returns the
// browser to the caller.
func (e *Engine) finish(w http.ResponseWriter, r *http.Request, a *Attempt) {
	ctx := r.Context()
	if a.Subject == "" {
		// Nothing is left to ask yet nobody was identified: every way in
		// is disabled. There is no one to make a session for.
		e.opt.Logger.Error("login chain has nothing to offer: are all start modules disabled?")
		web.Error(w, e.opt.StaticPath, http.StatusServiceUnavailable, "Sign-in is not available",
			"No sign-in method is enabled right now. Please contact the administrator.")
		return
	}
	if err := e.revalidate(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	if a.Account() {
		if offered, err := e.offered(ctx, a); err != nil || len(offered) > 0 {
			e.fail(w, errAttemptGone)
			return
		}
		e.finishAccount(w, r, a)
		return
	}
	if offered, err := e.offered(ctx, a); err != nil || len(offered) > 0 || a.Subject == "" {
		// Something changed since the page was shown (a password change,
		// an ended session): the chain asks again.
		if err != nil {
			e.fail(w, err)
		} else {
			http.Redirect(w, r, e.stepURL(a, ""), http.StatusSeeOther)
		}
		return
	}
	u, err := e.opt.Users.Get(ctx, a.Subject)
	if err != nil {
		e.fail(w, err)
		return
	}
	g := guard{ip: regulate.ClientIP(r), subject: a.Subject, user: u.Username, source: sourceOf(u)}
	if u.Inactive {
		// An account awaiting activation gets no session, whichever way
		// it came: an activation module is offered to it (and activates
		// it once its level is reached); where none is (one disabled),
		// the account cannot sign in.
		e.record(ctx, audit.Event{Event: audit.LoginFailed, Reason: "account not activated"}, g, a, nil)
		e.fail(w, errNotActivated)
		return
	}
	// The identity this sign-in proved the account for is linked now.
	if err := e.attachPending(ctx, a, g); err != nil {
		e.fail(w, err)
		return
	}
	// One use only: a finished attempt cannot be finished again.
	if err := e.markFinished(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	s, err := e.opt.Sessions.Load(r)
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		e.fail(w, err)
		return
	}
	if s != nil && s.Subject != a.Subject {
		// Another person signs in in this browser: the previous person's
		// session ends everywhere.
		if err := e.opt.Logout.EndReplaced(ctx, s.ID); err != nil {
			e.fail(w, err)
			return
		}
		s = nil
	}
	// apply puts what this attempt passed into a session: a new
	// authentication replaces what it had passed (its tokens describe
	// what was passed now), a step-up adds to it.
	stepUp := false
	apply := func(x *session.Session) error {
		stepUp = !a.Fresh && len(x.Passed) > 0
		if a.Fresh {
			x.Passed = nil
		}
		for _, p := range a.Passed {
			x.Pass(p)
		}
		return nil
	}
	newSession := s == nil
	if newSession {
		// A new id whenever the person changes: no session fixation.
		s = e.opt.Sessions.New(a.Subject)
		s.Device, s.IP = session.Device(r.UserAgent()), regulate.ClientIP(r)
		_ = apply(s)
		err = e.opt.Sessions.Save(ctx, w, s)
	} else {
		// Only while it is live: a logout meanwhile is not undone.
		s, err = e.opt.Sessions.Modify(ctx, w, s.ID, apply)
	}
	if errors.Is(err, session.ErrNoSession) {
		e.fail(w, errSessionEnded)
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	if newSession {
		// A user's sessions are capped: the oldest end (the account page
		// stays usable, a script cannot pile them up).
		if err := e.opt.Logout.LimitSessions(ctx, s.Subject); err != nil {
			e.opt.Logger.Error("gatehouse chain: limiting sessions", "error", err)
		}
	}
	ev := audit.Event{Event: audit.LoginSucceeded, SID: s.ID}
	if stepUp {
		ev.Event = audit.StepUp
	}
	var mods []string
	for _, p := range a.Passed {
		if slices.Contains(a.FromSession, p.Module) {
			continue // passed before this sign-in
		}
		mods = append(mods, p.Module)
		ev.AMR = append(ev.AMR, p.AMR...)
	}
	ev.Reason, ev.Modules = "modules: "+strings.Join(mods, " "), mods
	e.record(ctx, ev, g, a, nil)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.Req.ReturnTo, http.StatusSeeOther)
}
