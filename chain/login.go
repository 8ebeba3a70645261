package chain

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// maxFailures is how many wrong answers one attempt may give before it is
// locked and the person has to start again from the application.
const maxFailures = 10

// ServeHTTP serves the login pages at LoginPath: GET shows the next step
// (or a choice between several), POST checks a step.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		e.show(w, r, r.URL.Query().Get("attempt"), r.URL.Query().Get("module"), "")
	case http.MethodPost:
		e.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		web.Error(w, e.opt.StaticPath, http.StatusMethodNotAllowed, "Method not allowed", "This page accepts GET and POST only.")
	}
}

func (e *Engine) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, users.ErrBusy):
		w.Header().Set("Retry-After", "2")
		web.Error(w, e.opt.StaticPath, http.StatusServiceUnavailable, "Busy",
			"Many people are signing in right now. Please try again in a few seconds.")
	case errors.Is(err, errAttemptGone):
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "This sign-in has expired",
			"The sign-in page was open too long, was already used, or was started in another browser. Go back to the application and sign in again.")
	case errors.Is(err, errSessionEnded):
		web.Error(w, e.opt.StaticPath, http.StatusConflict, "Your sign-in has ended",
			"Your session was ended while you were signing in (you signed out elsewhere, or an administrator ended it). Go back to the application and sign in again.")
	case errors.Is(err, errAttemptLocked):
		web.Error(w, e.opt.StaticPath, http.StatusTooManyRequests, "Too many attempts",
			"This sign-in was stopped after too many failed attempts. Go back to the application to start again.")
	default:
		e.opt.Logger.Error("login step failed", "error", err)
		web.Error(w, e.opt.StaticPath, http.StatusServiceUnavailable, "Sign-in is not available right now",
			"The sign-in service could not complete this step. Please try again in a moment.")
	}
}

type choice struct{ Name, URL string }

type loginData struct {
	Client, Action, CSRF, Attempt, Module string
	Prompt
	Others []choice
	// Remember labels the "trust this browser" box of a module that can
	// be remembered.
	Remember string
}

func (e *Engine) stepURL(a *Attempt, module string) string {
	q := url.Values{"attempt": {a.Token}}
	if module != "" {
		q.Set("module", module)
	}
	return e.opt.LoginPath + "?" + q.Encode()
}

func (e *Engine) show(w http.ResponseWriter, r *http.Request, token, module, message string) {
	a, err := e.loadAttempt(w, r, token)
	if err != nil {
		e.fail(w, err)
		return
	}
	e.showAttempt(w, r, a, module, message)
}

func (e *Engine) showAttempt(w http.ResponseWriter, r *http.Request, a *Attempt, module, message string) {
	offered, err := e.next(r.Context(), a.Subject, a.Passed, a.Req.AcrValues)
	if err != nil {
		e.fail(w, err)
		return
	}
	if len(offered) == 0 {
		e.finish(w, r, a)
		return
	}
	var n *node
	if module != "" {
		i := slices.IndexFunc(offered, func(x *node) bool { return x.Name == module })
		if i < 0 {
			web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "That sign-in method is not available",
				"The method you asked for is not offered at this step. Go back and choose one of the methods shown.")
			return
		}
		n = offered[i]
	} else if len(offered) == 1 {
		n = offered[0]
	} else {
		var cs []choice
		for _, o := range offered {
			cs = append(cs, choice{Name: o.Name, URL: e.stepURL(a, o.Name)})
		}
		web.Render(w, http.StatusOK, "choose.html", web.Page{Title: "Sign in", Static: e.opt.StaticPath, Message: message,
			Data: struct {
				Client  string
				Choices []choice
			}{a.Req.Client, cs}})
		return
	}
	p, err := n.mod.Prompt(r.Context(), a)
	if err != nil {
		e.fail(w, err)
		return
	}
	d := loginData{Client: a.Req.Client, Action: e.opt.LoginPath, CSRF: e.opt.Sessions.CSRFToken(a.Browser, "login:"+a.ID),
		Attempt: a.Token, Module: n.Name, Prompt: p}
	if d.Submit == "" {
		d.Submit = "Continue"
	}
	switch n.Remember {
	case RememberPersistent:
		d.Remember = "Trust this browser for " + days(n.RememberFor)
	case RememberSession:
		d.Remember = "Trust this browser until it is closed"
	}
	for _, o := range offered {
		if o != n {
			d.Others = append(d.Others, choice{Name: o.Name, URL: e.stepURL(a, o.Name)})
		}
	}
	title := p.Title
	if title == "" {
		title = n.Name
	}
	status := http.StatusOK
	if message != "" {
		status = http.StatusUnauthorized
	}
	web.Render(w, status, "login.html", web.Page{Title: title, Static: e.opt.StaticPath, Message: message, Data: d})
}

func (e *Engine) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	a, err := e.loadAttempt(w, r, r.PostForm.Get("attempt"))
	if err != nil {
		e.fail(w, err)
		return
	}
	if !e.opt.Sessions.CheckCSRF(a.Browser, "login:"+a.ID, r.PostForm.Get("csrf")) {
		web.Error(w, e.opt.StaticPath, http.StatusForbidden, "This form has expired",
			"The form was not sent from this sign-in page (its security token is missing or wrong). Go back to the application and sign in again.")
		return
	}
	offered, err := e.next(r.Context(), a.Subject, a.Passed, a.Req.AcrValues)
	if err != nil {
		e.fail(w, err)
		return
	}
	if len(offered) == 0 {
		// Nothing is left to ask (another tab signed in meanwhile): this
		// form's answer is not needed.
		e.finish(w, r, a)
		return
	}
	name := r.PostForm.Get("module")
	i := slices.IndexFunc(offered, func(x *node) bool { return x.Name == name })
	if i < 0 {
		// Posting to a module that is not offered now (a later step, a
		// disabled module, a replayed form) is refused: steps cannot be
		// skipped.
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "That sign-in step is not available",
			"This step is not the one the sign-in expects now. Go back and continue from the page shown.")
		return
	}
	n := offered[i]
	ctx := r.Context()
	g, err := e.guardFor(ctx, r, a, n, r.PostForm)
	if err != nil {
		e.fail(w, err)
		return
	}
	if !e.begin(w, r, g, a, n) {
		return
	}
	sub, err := n.mod.Verify(ctx, a, r.PostForm)
	if rej, ok := IsRejection(err); ok {
		e.failed(ctx, g, a, n, rej.Message)
		// The attempt's own count is kept only once someone is
		// identified: before that nothing is stored for a failed form
		// (regulation counts it, in small records per address and name).
		if a.Subject != "" || a.stored {
			locked, err := e.countFailure(ctx, a)
			if err != nil {
				e.fail(w, err)
				return
			}
			if locked {
				e.fail(w, errAttemptLocked)
				return
			}
		}
		e.showAttempt(w, r, a, n.Name, rej.Message)
		return
	}
	e.passed(ctx, g) // a right answer, or a failure that is not the person's
	if errors.Is(err, users.ErrBusy) {
		e.record(ctx, audit.Event{Event: audit.Busy}, g, a, n)
	}
	if err != nil {
		e.fail(w, err)
		return
	}
	if a.Subject != "" && sub != a.Subject {
		// A different person identified: start from scratch with them.
		a.Passed = nil
	}
	firstID := a.Subject != sub // first identified, or another person
	a.Subject = sub
	passed := session.Passed{Module: n.Name, Kind: n.Kind, Levels: n.Levels, AMR: n.amr, At: e.opt.Sessions.Now().Truncate(time.Second)}
	a.Passed = append(slices.DeleteFunc(a.Passed, func(p session.Passed) bool { return p.Module == n.Name }), passed)
	if n == e.start {
		a.Fresh = true
	}
	if r.PostForm.Get("remember") == "on" {
		if err := e.remember(ctx, w, r, a, n, passed); err != nil {
			e.fail(w, err)
			return
		}
	}
	if firstID {
		// Now that we know who it is, this device may be trusted for
		// later steps.
		if err := e.addRemembered(ctx, r, a); err != nil {
			e.fail(w, err)
			return
		}
	}
	if err := e.saveAttempt(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	http.Redirect(w, r, e.stepURL(a, ""), http.StatusSeeOther)
}

// days says a remember duration for people.
func days(d time.Duration) string {
	if d <= 0 {
		d = defaultRemember
	}
	if n := int(d / (24 * time.Hour)); n > 1 {
		return strconv.Itoa(n) + " days"
	}
	return "a day"
}

// finish turns a completed attempt into the SSO session and returns the
// browser to the caller.
func (e *Engine) finish(w http.ResponseWriter, r *http.Request, a *Attempt) {
	ctx := r.Context()
	if a.Subject == "" {
		// Nothing is left to ask yet nobody was identified: every way in
		// is disabled. There is no one to make a session for.
		e.opt.Logger.Error("login chain has nothing to offer: is the start module disabled?", "module", e.start.Name)
		web.Error(w, e.opt.StaticPath, http.StatusServiceUnavailable, "Sign-in is not available",
			"No sign-in method is enabled right now. Please contact the administrator.")
		return
	}
	if err := e.revalidate(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	if offered, err := e.next(ctx, a.Subject, a.Passed, a.Req.AcrValues); err != nil || len(offered) > 0 || a.Subject == "" {
		// Something changed since the page was shown (a password change,
		// an ended session): the chain asks again.
		if err != nil {
			e.fail(w, err)
		} else {
			http.Redirect(w, r, e.stepURL(a, ""), http.StatusSeeOther)
		}
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
	ev.Reason = "modules: " + strings.Join(mods, " ")
	g := guard{ip: regulate.ClientIP(r), subject: a.Subject}
	if u, err := e.opt.Users.Get(ctx, a.Subject); err == nil {
		g.user = u.Username
	}
	e.record(ctx, ev, g, a, nil)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.Req.ReturnTo, http.StatusSeeOther)
}
