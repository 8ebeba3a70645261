package chain

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// AccountModule is a module with a part on the account page: what the
// user has of it (passkeys, linked identities), each removable, and a
// button to add one. Adding runs the module itself as the only step of
// an attempt whose subject is the signed-in user (Engine.StartAccount;
// Attempt.Account reports it): a form, scripted or redirect module
// passes as usual, and what it stored or linked during the pass is the
// user's. The pass adds nothing to the session. Removing is Remove.
type AccountModule interface {
	Module
	// Account is u's part of the page (AccountPart.Add "": nothing to
	// add here).
	Account(ctx context.Context, u users.User) (AccountPart, error)
	// Remove removes u's item id. It refuses, with an error for people
	// (RemoveRefused), to remove the user's last way in (no password
	// and no other item).
	Remove(ctx context.Context, u users.User, id string) error
}

// AccountPart is a module's part of the account page.
type AccountPart struct {
	// Title heads the part ("Passkeys", "Linked accounts").
	Title string
	Items []AccountItem
	// Add labels the button that adds one ("Add a passkey"); "" for
	// none.
	Add string
}

// AccountItem is one thing the user has: a passkey, a linked identity.
type AccountItem struct {
	// ID names it to Remove; Label and Detail ("added 3 May, last used
	// today") are shown.
	ID, Label, Detail string
}

// RemoveRefused is a removal a module refuses; its text is for people.
type RemoveRefused struct{ Reason string }

func (r RemoveRefused) Error() string { return r.Reason }

// AccountSection is a module's part of the account page, named.
type AccountSection struct {
	Module string
	AccountPart
}

var (
	// ErrNoAccountModule: no enabled module of that name has a part on
	// the account page (or it adds nothing).
	ErrNoAccountModule = errors.New("chain: no such account module")
	// errOtherAccount: an account attempt's module passed as, or linked
	// to, someone else.
	errOtherAccount = errors.New("the module passed for another account")
)

// Account reports whether the attempt adds to the signed-in user's
// account (StartAccount) rather than signing in.
func (a *Attempt) Account() bool { return a.Req.Account != "" }

// AccountSections lists the parts of the account page for u, in the
// chain's order; disabled modules have none.
func (e *Engine) AccountSections(ctx context.Context, u users.User) ([]AccountSection, error) {
	var out []AccountSection
	for _, n := range e.list {
		am, ok := n.mod.(AccountModule)
		if !ok || n.Disabled {
			continue
		}
		part, err := am.Account(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("chain: account part of %q: %w", n.Name, err)
		}
		if part.Add == "" && len(part.Items) == 0 {
			continue
		}
		out = append(out, AccountSection{Module: n.Name, AccountPart: part})
	}
	return out, nil
}

// accountNode is the enabled AccountModule named module.
func (e *Engine) accountNode(module string) (*node, AccountModule, error) {
	n, ok := e.nodes[module]
	if !ok || n.Disabled {
		return nil, nil, ErrNoAccountModule
	}
	am, ok := n.mod.(AccountModule)
	if !ok {
		return nil, nil, ErrNoAccountModule
	}
	return n, am, nil
}

// RemoveAccountItem removes u's item id of module, recording it.
func (e *Engine) RemoveAccountItem(ctx context.Context, u users.User, module, id string) error {
	n, am, err := e.accountNode(module)
	if err != nil {
		return err
	}
	if err := am.Remove(ctx, u, id); err != nil {
		return err
	}
	e.opt.Audit.Record(ctx, audit.Event{Event: audit.CredentialRemoved, User: u.Username, Subject: u.Subject, Module: n.Name, Target: id})
	return nil
}

// StartAccount begins adding to the account of the browser's signed-in
// user with module (its part's Add button) and redirects to its page;
// the browser comes back to returnTo. Without a live session it answers
// session.ErrNoSession.
func (e *Engine) StartAccount(w http.ResponseWriter, r *http.Request, module, returnTo string) error {
	_, am, err := e.accountNode(module)
	if err != nil {
		return err
	}
	s, err := e.opt.Sessions.Load(r)
	if err != nil {
		return err
	}
	u, err := e.opt.Users.Get(r.Context(), s.Subject)
	if err != nil {
		return err
	}
	if part, err := am.Account(r.Context(), u); err != nil {
		return err
	} else if part.Add == "" {
		return ErrNoAccountModule
	}
	tok := attemptToken{
		ID:      randomID(),
		Browser: e.opt.Sessions.BrowserID(w, r),
		Req:     attemptRequest{ReturnTo: returnTo, Account: module, AccountOf: s.Subject},
		Expires: e.opt.Sessions.Now().Add(e.opt.AttemptTTL),
	}
	sealed, err := e.opt.Sessions.Seal(purposeAttempt, tok, e.opt.AttemptTTL)
	if err != nil {
		return err
	}
	http.Redirect(w, r, e.opt.LoginPath+"?"+url.Values{"attempt": {sealed}, "module": {module}}.Encode(), http.StatusSeeOther)
	return nil
}

// accountAttempt fills a new account attempt from the browser's
// session: its user is the subject, and nothing it passed counts (the
// module is asked in any case).
func (e *Engine) accountAttempt(r *http.Request, a *Attempt) error {
	s, err := e.opt.Sessions.Load(r)
	if errors.Is(err, session.ErrNoSession) || err == nil && s.Subject != a.Req.AccountOf {
		return errSessionEnded
	} else if err != nil {
		return err
	}
	a.Subject, a.SessionID = s.Subject, s.ID
	return nil
}

// offered is what attempt a offers now: for an account attempt its one
// module until it passed, else the chain's next steps.
func (e *Engine) offered(ctx context.Context, a *Attempt) ([]*node, error) {
	if !a.Account() {
		return e.next(ctx, a.Subject, a.Passed, a.Req.AcrValues)
	}
	n, _, err := e.accountNode(a.Req.Account)
	if err != nil {
		return nil, errAttemptGone
	}
	for _, p := range a.Passed {
		if p.Module == n.Name {
			return nil, nil
		}
	}
	return []*node{n}, nil
}

// finishAccount ends an account attempt whose module passed (revalidate
// found the session it started from live and the same person's);
// nothing is added to that session. The browser goes back to the account page.
func (e *Engine) finishAccount(w http.ResponseWriter, r *http.Request, a *Attempt) {
	ctx := r.Context() // the session was checked by revalidate
	if err := e.markFinished(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	u, err := e.opt.Users.Get(ctx, a.Subject)
	if err != nil {
		e.fail(w, err)
		return
	}
	e.record(ctx, audit.Event{Event: audit.CredentialAdded, Module: a.Req.Account, SID: a.SessionID},
		guard{ip: regulate.ClientIP(r), subject: u.Subject, user: u.Username}, a, nil)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.Req.ReturnTo, http.StatusSeeOther)
}

// otherAccount says an account attempt's module passed for another
// account (a passkey or an identity that is someone else's).
func (e *Engine) otherAccount(w http.ResponseWriter) {
	web.Error(w, e.opt.StaticPath, http.StatusConflict, "That belongs to another account",
		"What you used belongs to another account, so it was not added to yours. Sign in to that account to manage it.")
}

// UserForgetter is a module that keeps records of a user (a TOTP
// secret, passkeys, linked identities): it removes them when the user is
// deleted.
type UserForgetter interface {
	ForgetUser(ctx context.Context, subject string) error
}

// ForgetUser removes what the chain keeps of a user being deleted: every
// module's records (disabled modules too) and the browsers trusted for
// them.
func (e *Engine) ForgetUser(ctx context.Context, subject string) error {
	for _, n := range e.list {
		if f, ok := n.mod.(UserForgetter); ok {
			if err := f.ForgetUser(ctx, subject); err != nil {
				return fmt.Errorf("chain: module %q forgetting a user: %w", n.Name, err)
			}
		}
	}
	_, err := Forget(ctx, e.opt.Store, subject)
	return err
}
