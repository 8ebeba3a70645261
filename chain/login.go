package chain

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// maxFailures is how many wrong answers one attempt may give before it is
// locked and the person has to start again from the application.
const maxFailures = 10

// ServeHTTP serves the login pages at LoginPath — GET shows the next step
// (or a choice between several), POST checks a step — and each module
// instance's own endpoints below LoginPath/m/<name>/.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The client address rides in the context: the audit trail takes it
	// for events modules record, and modules read it
	// (regulate.IPFromContext: a sign-up counts them per address).
	ip := regulate.ClientIP(r)
	w = web.Localize(w, r)
	r = r.WithContext(regulate.WithClientIP(audit.WithIP(r.Context(), ip), ip))
	if r.URL.Path != e.opt.LoginPath {
		if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), e.opt.LoginPath+"/m/"); ok {
			e.serveModule(w, r, rest)
			return
		}
		web.Error(w, e.opt.StaticPath, http.StatusNotFound, "Page not found", "There is nothing at this address.")
		return
	}
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
	case e.refusedIdentity(w, err):
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

// choice is a link to a module's page: its label, and the mark of a
// Branded module.
type choice struct{ Name, URL, Mark string }

type loginData struct {
	Client, Action, CSRF, Attempt, Module string
	Step                                  Step
	Prompt
	Others []choice
	// Offers are the links under the form to modules that are a way in
	// beside this one ("Forgot password?").
	Offers []choice
	// Remember labels the "trust this browser" box of a module that can
	// be remembered.
	Remember string
	// Begin and Finish are a scripted module's JSON endpoints.
	Begin, Finish string
	// Token is a mailed link's token, on the page that confirms it.
	Token string
	// Need says why a signed-in person is asked for more (a step-up).
	Need string
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
	offered, err := e.offered(r.Context(), a)
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
	} else if n = landing(offered); n == nil {
		e.chooseMethod(w, a, offered, message)
		return
	}
	if _, ok := n.mod.(MailModule); ok && r.URL.Query().Get("again") == "" {
		if sent, err := e.mailSent(r.Context(), a, n); err != nil {
			e.fail(w, err)
			return
		} else if sent {
			e.showMailSent(w, a, n, offered, message)
			return
		}
	}
	p, err := n.mod.Prompt(r.Context(), a)
	if err != nil {
		e.fail(w, err)
		return
	}
	e.render(w, a, n, offered, p, message)
}

// render shows module n's page p, with links to the other modules
// offered and to extra.
func (e *Engine) render(w http.ResponseWriter, a *Attempt, n *node, offered []*node, p Prompt, message string, extra ...choice) {
	d := loginData{Client: a.Req.Client, Action: e.opt.LoginPath, CSRF: e.csrf(a), Attempt: a.Token, Module: n.Name, Prompt: p, Step: p.Step}
	if d.Submit == "" {
		d.Submit = "Continue"
	}
	switch {
	case a.Account():
		// Adding to an account trusts no browser.
	case n.Remember == RememberPersistent:
		d.Remember = web.Sprintf("Trust this browser for %s", days(n.RememberFor))
	case n.Remember == RememberSession:
		d.Remember = "Trust this browser until it is closed"
	}
	d.Others = extra
	if len(a.FromSession) > 0 && len(a.Req.AcrValues) > 0 && !a.Account() {
		levels := strings.Join(a.Req.AcrValues, " / ")
		if a.Req.Client == "" {
			d.Need = web.Sprintf("You are signed in, but this page asks for more than your sign-in so far (level %s).", levels)
		} else {
			d.Need = web.Sprintf("You are signed in, but %s asks for more than your sign-in so far (level %s).", a.Req.Client, levels)
		}
	}
	_, onOffer := n.mod.(Offerer)
	for _, o := range offered {
		switch _, offer := o.mod.(Offerer); {
		case o == n:
		case offer && !onOffer:
			d.Offers = append(d.Offers, e.choiceOf(a, o))
		default:
			d.Others = append(d.Others, e.choiceOf(a, o))
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
	page := web.Page{Title: title, Static: e.opt.StaticPath, Message: message, Data: &d}
	if sm, ok := n.mod.(ScriptedModule); ok {
		e.scriptPage(&page, &d, n, sm)
	} else {
		e.autofillPage(&page, &d, n, offered)
	}
	web.Render(w, status, "login.html", page)
}

// csrf is the token every form and JSON request of attempt a carries.
func (e *Engine) csrf(a *Attempt) string { return e.opt.Sessions.CSRFToken(a.Browser, "login:"+a.ID) }

// submit checks a posted step: the attempt is this browser's, the CSRF
// token is right, and the module is one offered now; then the step's
// button decides what runs.
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
	offered, err := e.offered(r.Context(), a)
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
	n := offeredNode(offered, r.PostForm.Get("module"))
	if n == nil {
		// Posting to a module that is not offered now (a later step, a
		// disabled module, a replayed form) is refused: steps cannot be
		// skipped.
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "That sign-in step is not available",
			"This step is not the one the sign-in expects now. Go back and continue from the page shown.")
		return
	}
	var ok bool
	switch Step(r.PostForm.Get("step")) {
	case "", StepVerify:
		var fm FormModule
		if fm, ok = n.mod.(FormModule); ok {
			e.verify(w, r, a, n, fm)
		}
	case StepRedirect:
		var rm RedirectModule
		if rm, ok = n.mod.(RedirectModule); ok {
			e.leave(w, r, a, n, rm)
		}
	case StepSend:
		var mm MailModule
		if mm, ok = n.mod.(MailModule); ok {
			e.sendMail(w, r, a, n, mm)
		}
	case stepCode:
		var mm MailModule
		if mm, ok = n.mod.(MailModule); ok {
			e.enterCode(w, r, a, n, mm)
		}
	}
	if !ok {
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "That sign-in step is not available",
			"This sign-in method does not take that kind of answer. Go back and continue from the page shown.")
	}
}

func offeredNode(offered []*node, name string) *node {
	if i := slices.IndexFunc(offered, func(x *node) bool { return x.Name == name }); i >= 0 {
		return offered[i]
	}
	return nil
}

// verify checks a FormModule's posted form.
func (e *Engine) verify(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, fm FormModule) {
	ctx := r.Context()
	g, err := e.guardFor(ctx, r, a.Subject, n, r.PostForm)
	if err != nil {
		e.fail(w, err)
		return
	}
	e.conclude(w, r, a, n, g, false, r.PostForm.Get("remember") == "on", func() (Identity, error) { return fm.Verify(ctx, a, r.PostForm) })
}

// serveModule routes LoginPath/m/<name>/<endpoint> to the instance's
// endpoint, when the instance is enabled and has that capability.
func (e *Engine) serveModule(w http.ResponseWriter, r *http.Request, rest string) {
	esc, endpoint, _ := strings.Cut(rest, "/")
	name, err := url.PathUnescape(esc)
	n := e.nodes[name]
	if err != nil || n == nil || n.Disabled {
		web.Error(w, e.opt.StaticPath, http.StatusNotFound, "Page not found", "There is no such sign-in method.")
		return
	}
	var ok bool
	switch endpoint {
	case "callback":
		var rm RedirectModule
		if rm, ok = n.mod.(RedirectModule); ok {
			e.callback(w, r, n, rm)
		}
	case "begin", "finish":
		var sm ScriptedModule
		if sm, ok = n.mod.(ScriptedModule); ok {
			e.scriptRound(w, r, n, sm, endpoint == "finish")
		}
	case "script.js":
		var sm ScriptedModule
		if sm, ok = n.mod.(ScriptedModule); ok {
			ok = e.serveScript(w, r, sm)
		}
	case "mail":
		var mm MailModule
		if mm, ok = n.mod.(MailModule); ok {
			e.mailLink(w, r, n, mm)
		}
	}
	if em, is := n.mod.(Endpoints); !ok && is {
		if h := em.Endpoint(endpoint); h != nil {
			h.ServeHTTP(w, r)
			return
		}
	}
	if !ok {
		web.Error(w, e.opt.StaticPath, http.StatusNotFound, "Page not found", "There is nothing at this address.")
	}
}

// days says a remember duration for people.
func days(d time.Duration) string {
	if d <= 0 {
		d = defaultRemember
	}
	return web.Duration(max(d, 24*time.Hour))
}
