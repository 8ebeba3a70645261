package provider

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/web"
)

// PathAccount is the user's own page: active sessions and devices.
const PathAccount = "/account"

type accountSession struct {
	SID, Created, LastSeen, Modules, Clients string
	Current                                  bool
}

// account lists the user's sessions with a sign-out button for each,
// "sign out everywhere else" and "forget my trusted devices".
func (p *Provider) account(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, user, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	if s == nil {
		if r.Method != http.MethodGet {
			p.errorPage(w, http.StatusForbidden, "Signed out", "Your session has ended. Sign in again to manage your sessions.")
			return
		}
		if err := p.cfg.Chain.Start(w, r, chain.Request{ReturnTo: p.prefix + PathAccount}); err != nil {
			p.serverErrorPage(w, "starting login", err)
		}
		return
	}
	browser := p.cfg.Sessions.BrowserID(w, r)
	csrf := p.cfg.Sessions.CSRFToken(browser, "account:"+s.ID)
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if r.ParseForm() != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(csrf)) != 1 {
			p.errorPage(w, http.StatusForbidden, "This form has expired", "Reload the page and try again.")
			return
		}
		list, err := p.cfg.Sessions.ListFor(ctx, user.Subject)
		if err != nil {
			p.serverErrorPage(w, "listing sessions", err)
			return
		}
		switch r.PostForm.Get("action") {
		case "end":
			for _, o := range list {
				if o.ID == r.PostForm.Get("sid") {
					if err := p.cfg.Logout.End(ctx, o.ID, logout.ByUser); err != nil {
						p.accountActionFailed(w, err)
						return
					}
					if o.ID == s.ID {
						// Signing out here clears this browser's cookie.
						p.cfg.Sessions.ClearCookie(w)
						p.newBrowserState(w, nil)
					}
				}
			}
		case "others":
			for _, o := range list {
				if o.ID != s.ID {
					if err := p.cfg.Logout.End(ctx, o.ID, logout.ByUser); err != nil {
						p.accountActionFailed(w, err)
						return
					}
				}
			}
		case "forget":
			if _, err := chain.Forget(ctx, p.cfg.Store, user.Subject); err != nil {
				p.serverErrorPage(w, "forgetting devices", err)
				return
			}
		default:
			p.errorPage(w, http.StatusBadRequest, "Unknown action", "Go back and use one of the buttons.")
			return
		}
		http.Redirect(w, r, p.prefix+PathAccount, http.StatusSeeOther)
		return
	default:
		w.Header().Set("Allow", "GET, POST")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
	list, err := p.cfg.Sessions.ListFor(ctx, user.Subject)
	if err != nil {
		p.serverErrorPage(w, "listing sessions", err)
		return
	}
	var rows []accountSession
	for _, o := range list {
		var mods []string
		for _, m := range o.Passed {
			mods = append(mods, m.Module)
		}
		rows = append(rows, accountSession{SID: o.ID, Created: o.Created.Format(time.RFC1123), LastSeen: o.LastSeen.Format(time.RFC1123),
			Modules: strings.Join(mods, ", "), Clients: strings.Join(o.Clients, ", "), Current: o.ID == s.ID})
	}
	web.Render(w, http.StatusOK, "account.html", web.Page{Title: "Your sessions", Static: p.staticPath(),
		Data: struct {
			User, Action, CSRF string
			Sessions           []accountSession
		}{user.Username, p.prefix + PathAccount, csrf, rows}})
}

// accountActionFailed says a sign-out on the account page did not happen.
func (p *Provider) accountActionFailed(w http.ResponseWriter, err error) {
	p.cfg.Logger.Error("gatehouse provider: sign-out could not be recorded", "error", err)
	p.errorPage(w, http.StatusServiceUnavailable, "Sign-out did not complete",
		"The sign-in service could not record the sign-out, so that session is still active. Go back and try again in a moment.")
}
