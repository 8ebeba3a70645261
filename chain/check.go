package chain

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

var (
	errNotLinked       = errors.New("identity not linked to a local user")
	errAccountDisabled = errors.New("account disabled")
	errNotActivated    = errors.New("account not activated")
)

// check runs fn — one check of a secret by module n: a form, a callback,
// a script's answer, a mailed link or code — under regulation. It is
// counted on every key before fn runs, unless counted says it was when
// it started (leaving for another site, mailing a link): then only a
// ban meanwhile stops it, and its outcome settles that count. It
// returns fn's Identity, or: a *Rejection (audited, counted on every key
// and, once someone is identified, on the attempt); a *blockedError (fn
// did not run); errAttemptLocked; a technical error.
func (e *Engine) check(ctx context.Context, g guard, a *Attempt, n *node, counted bool, fn func() (Identity, error)) (Identity, error) {
	admit := e.admit
	if counted {
		admit = e.admissible
	}
	if err := admit(ctx, g, a, n); err != nil {
		return Identity{}, err
	}
	id, err := fn()
	if rej, ok := IsRejection(err); ok {
		e.failed(ctx, g, a, n, rej.Message)
		// The attempt's own count is kept only once someone is
		// identified: before that nothing is stored for a failed check
		// (regulation counts it, in small records per address and name).
		if a.Subject != "" || a.stored {
			locked, err := e.countFailure(ctx, a)
			if err != nil {
				return Identity{}, err
			}
			if locked {
				return Identity{}, errAttemptLocked
			}
		}
		return Identity{}, rej
	}
	e.passed(ctx, g) // a right answer, or a failure that is not the person's
	if errors.Is(err, users.ErrBusy) {
		e.record(ctx, audit.Event{Event: audit.Busy}, g, a, n)
	}
	return id, err
}

// startCounted counts a step that starts a check finished by a later
// request (leaving for another site, mailing a link) against the
// address and the account (identified, or claimed by form). It reports
// false when it has answered already (regulation refused, or failed).
func (e *Engine) startCounted(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, form url.Values) (guard, bool) {
	ctx := r.Context()
	g, err := e.guardFor(ctx, r, a.Subject, n, form)
	if err == nil {
		err = e.admit(ctx, g, a, n)
	}
	if err != nil {
		e.answer(w, r, a, n, err)
		return g, false
	}
	return g, true
}

// answer shows the outcome of a failed step as a page: a rejection on the
// module's page again, a refusal by regulation, or an error page.
func (e *Engine) answer(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, err error) {
	var b *blockedError
	if rej, ok := IsRejection(err); ok {
		e.showAttempt(w, r, a, n.Name, rej.Message)
	} else if errors.As(err, &b) {
		tooManyAttempts(w, e.opt.StaticPath, b.after)
	} else {
		e.fail(w, err)
	}
}

// accept records that module n passed with id in attempt a and keeps
// the attempt. It reports whether n passed: a zero Identity means the
// module goes on (another page of it), and the attempt is kept for the
// records the module hangs on its id.
func (e *Engine) accept(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, id Identity, remember bool) (bool, error) {
	ctx := r.Context()
	if id.IsZero() {
		return false, e.saveAttempt(ctx, a)
	}
	if err := checkIdentity(n.Name, id); err != nil {
		return false, err
	}
	levels, err := passLevels(n, id)
	if err != nil {
		return false, err
	}
	sub := id.Subject
	if id.Unlinked != nil {
		if sub, err = e.link(ctx, a, n, *id.Unlinked); err != nil {
			return false, err
		}
	}
	if a.Account() && sub != a.Subject {
		// Adding to an account: what passed must be this user's.
		return false, errOtherAccount
	}
	u, err := e.opt.Users.Get(ctx, sub)
	if errors.Is(err, users.ErrNotFound) {
		return false, fmt.Errorf("chain: module %q passed for a subject no user has", n.Name)
	} else if err != nil {
		return false, err
	}
	if u.Disabled {
		return false, errAccountDisabled
	}
	if id.EndSessions && !e.opt.KeepSessionsOnPasswordChange {
		if _, err := e.opt.Logout.EndAll(ctx, sub, logout.Password); err != nil {
			return false, err
		}
	}
	if a.Subject != "" && sub != a.Subject {
		// A different person identified: start from scratch with them.
		a.Passed = nil
	}
	firstID := a.Subject != sub // first identified, or another person
	a.Subject = sub
	passed := session.Passed{Module: n.Name, Kind: n.Kind, Levels: levels, AMR: id.AMR, At: e.opt.Sessions.Now().Truncate(time.Second), Ref: id.Ref}
	a.Passed = append(slices.DeleteFunc(a.Passed, func(p session.Passed) bool { return p.Module == n.Name }), passed)
	if a.Account() {
		// Nothing of an account attempt reaches a session or the
		// device's memory.
		return true, e.saveAttempt(ctx, a)
	}
	if n.root {
		a.Fresh = true
	}
	if remember {
		if err := e.remember(ctx, w, r, a, n, passed); err != nil {
			return false, err
		}
	}
	if firstID {
		// Now that we know who it is, this device may be trusted for
		// later steps.
		if err := e.addRemembered(ctx, r, a); err != nil {
			return false, err
		}
	}
	if err := e.afterPass(ctx, a); err != nil {
		return false, err
	}
	return true, e.saveAttempt(ctx, a)
}

// afterPass tells every UserModule of the chain of a pass, then reads
// the user again (revalidate): what they changed counts from now on.
func (e *Engine) afterPass(ctx context.Context, a *Attempt) error {
	var u *users.User
	levels := e.outcome(a.Passed, nil).Levels
	for _, n := range e.list {
		um, ok := n.mod.(UserModule)
		if !ok || n.Disabled {
			continue
		}
		if u == nil {
			got, err := e.opt.Users.Get(ctx, a.Subject)
			if err != nil {
				return err
			}
			u = &got
		}
		if err := um.AfterPass(ctx, a, *u, levels); err != nil {
			return fmt.Errorf("chain: module %q after a pass: %w", n.Name, err)
		}
	}
	return e.revalidate(ctx, a)
}

// conclude runs a check (see check) and sends the browser on: to the
// next step when module n passed, to n's page again when it goes on, or
// the failure's page.
func (e *Engine) conclude(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, g guard, counted, remember bool, fn func() (Identity, error)) {
	id, err := e.check(r.Context(), g, a, n, counted, fn)
	if err != nil {
		e.answer(w, r, a, n, err)
		return
	}
	passed, err := e.accept(w, r, a, n, id, remember)
	var prove *ProveAccount
	if errors.As(err, &prove) {
		// Not passed: the person signs in to the account first (the
		// attempt keeps the identity to link, see link).
		e.showAttempt(w, r, a, "", prove.Message)
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	e.passedPage(w, r, a, n, passed)
}

// resume goes on with stored attempt id of browser at module n from
// outside its page (a callback, a mailed link): n must still be a step
// the attempt offers. sub names the account checked when none is
// identified yet; elsewhere says the step is taken in another browser
// (then a sign-in that went on meanwhile is gone). fn is the check,
// counted when it started.
func (e *Engine) resume(w http.ResponseWriter, r *http.Request, id, browser string, n *node, sub string, elsewhere, remember bool, fn func(a *Attempt) (Identity, error)) {
	ctx := r.Context()
	a, err := e.storedAttempt(ctx, id, browser)
	if errors.Is(err, store.ErrNotFound) {
		err = errAttemptGone
	}
	if err != nil {
		e.fail(w, err)
		return
	}
	offered, err := e.offered(ctx, a)
	if err != nil {
		e.fail(w, err)
		return
	}
	if offeredNode(offered, n.Name) == nil {
		// The sign-in went on without this step (another tab).
		if elsewhere {
			e.fail(w, errAttemptGone)
		} else {
			http.Redirect(w, r, e.stepURL(a, ""), http.StatusSeeOther)
		}
		return
	}
	if a.Subject != "" {
		sub = a.Subject
	}
	g, err := e.guardFor(ctx, r, sub, n, nil)
	if err != nil {
		e.fail(w, err)
		return
	}
	e.conclude(w, r, a, n, g, true, remember, func() (Identity, error) { return fn(a) })
}

// passedPage sends the browser on after a step: to the next step when n
// passed, else to n's page again.
func (e *Engine) passedPage(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, passed bool) {
	next := e.stepURL(a, "")
	if !passed {
		next = e.stepURL(a, n.Name)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// refusedIdentity explains the refusals of an identity that passed its
// module: not linked to a local user, a disabled account, an account
// not activated.
func (e *Engine) refusedIdentity(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, errNotLinked):
		web.Error(w, e.opt.StaticPath, http.StatusForbidden, "This account is not known here",
			"You signed in, but that account is not linked to an account here. Sign in another way, or ask the administrator.")
	case errors.Is(err, errOtherAccount):
		e.otherAccount(w)
	case errors.Is(err, errAccountDisabled):
		web.Error(w, e.opt.StaticPath, http.StatusForbidden, "This account cannot sign in",
			"The account is disabled. Ask the administrator.")
	case errors.Is(err, errNotActivated):
		web.Error(w, e.opt.StaticPath, http.StatusForbidden, "This account is not active yet",
			"Open the link in the activation message sent to your address, then sign in again. If it does not come, sign in again to have a new one sent, or ask the administrator.")
	default:
		return false
	}
	return true
}
