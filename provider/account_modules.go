package provider

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// PathAccountAdd starts adding a way in (a passkey, a linked identity)
// with the chain module named by ?module=.
const PathAccountAdd = PathAccount + "/add"

// accountReauth: adding a way in needs a sign-in this recent, so that a
// session cookie alone (taken from an unattended browser) cannot plant a
// lasting way into the account.
const accountReauth = 15 * time.Minute

// accountPart is a chain module's part of the account page.
type accountPart struct {
	chain.AccountSection
	AddURL string
}

func (p *Provider) accountParts(r *http.Request, u users.User) ([]accountPart, error) {
	secs, err := p.cfg.Chain.AccountSections(r.Context(), u)
	if err != nil {
		return nil, err
	}
	out := make([]accountPart, 0, len(secs))
	for _, s := range secs {
		part := accountPart{AccountSection: s}
		if s.Add != "" {
			part.AddURL = p.prefix + PathAccountAdd + "?" + url.Values{"module": {s.Module}}.Encode()
		}
		out = append(out, part)
	}
	return out, nil
}

// accountRemove removes an item of a module's part (the form's module
// and item), answering with a page when it cannot.
func (p *Provider) accountRemove(w http.ResponseWriter, r *http.Request, u users.User) bool {
	err := p.cfg.Chain.RemoveAccountItem(r.Context(), u, r.PostForm.Get("module"), r.PostForm.Get("item"))
	var refused chain.RemoveRefused
	switch {
	case err == nil:
		return true
	case errors.As(err, &refused):
		p.errorPage(w, http.StatusConflict, "Not removed", refused.Reason)
	case errors.Is(err, chain.ErrNoAccountModule):
		p.errorPage(w, http.StatusBadRequest, "Unknown item", "Go back and use one of the buttons.")
	default:
		p.serverErrorPage(w, "removing an account item", err)
	}
	return false
}

// accountAdd begins adding a way in with a module, after a new sign-in
// when the last one is older than accountReauth.
func (p *Provider) accountAdd(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
	ctx := r.Context()
	module := r.URL.Query().Get("module")
	self := p.prefix + PathAccountAdd + "?" + url.Values{"module": {module}}.Encode()
	s, _, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	if s != nil {
		o, err := p.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, nil, time.Time{})
		if err != nil {
			p.serverErrorPage(w, "evaluating session", err)
			return
		}
		if p.cfg.Sessions.Now().Sub(o.AuthTime) > accountReauth {
			s = nil
		}
	}
	if s == nil {
		// Sign in (again) first, then come back here.
		if err := p.cfg.Chain.Start(w, r, chain.Request{ReturnTo: self, ForceLogin: true}); err != nil {
			p.serverErrorPage(w, "starting login", err)
		}
		return
	}
	switch err := p.cfg.Chain.StartAccount(w, r, module, p.prefix+PathAccount); {
	case errors.Is(err, chain.ErrNoAccountModule):
		p.errorPage(w, http.StatusNotFound, "Nothing to add", "This sign-in method cannot be added to your account here.")
	case errors.Is(err, session.ErrNoSession):
		p.errorPage(w, http.StatusForbidden, "Signed out", "Your session has ended. Sign in again to manage your account.")
	case err != nil:
		p.serverErrorPage(w, "starting to add a sign-in method", err)
	}
}
