package provider

import (
	"context"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/web"
)

// PathAccount is the user's own page: active sessions and devices.
const PathAccount = "/account"

type accountSession struct {
	SID, Created, LastSeen, Modules, Clients, Device, IP string
	Current                                              bool
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
		case "end", "others":
			// The sessions ended here, whose clients' front-channel
			// logout pages then load in this browser.
			var ended []*session.Session
			for i, o := range list {
				if r.PostForm.Get("action") == "end" && o.ID != r.PostForm.Get("sid") || r.PostForm.Get("action") == "others" && o.ID == s.ID {
					continue
				}
				if err := p.cfg.Logout.End(ctx, o.ID, logout.ByUser); err != nil {
					p.accountActionFailed(w, err)
					return
				}
				ended = append(ended, list[i])
				if o.ID == s.ID {
					// Signing out here clears this browser's cookie.
					p.cfg.Sessions.ClearCookie(w)
					p.newBrowserState(w, nil)
				}
			}
			var frames, origins []string
			for _, e := range ended {
				f, o := p.frontchannel(ctx, e)
				frames, origins = append(frames, f...), append(origins, o...)
			}
			if len(frames) > 0 {
				web.Render(w, http.StatusOK, "logged_out.html", web.Page{Title: "Signed out", Static: p.staticPath(),
					Message: "The applications of those sessions are being signed out.", FrameSrc: slices.Compact(origins), Refresh: p.prefix + PathAccount,
					Data: loggedOut{Frames: frames, Continue: p.prefix + PathAccount}})
				return
			}
		case "withdraw":
			// "Apps with access": forget the consent and take back every
			// token the client holds for this person.
			id := r.PostForm.Get("client")
			sids := make([]string, 0, len(list))
			for _, o := range list {
				sids = append(sids, o.ID)
			}
			if err := p.tokens.withdraw(ctx, user.Subject, id, sids); err != nil {
				p.serverErrorPage(w, "withdrawing access", err)
				return
			}
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.ConsentRevoked, Client: id, Subject: user.Subject, User: user.Username, SID: s.ID})
		case "remove":
			if !p.accountRemove(w, r, user) {
				return
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
		var apps []string
		for _, c := range o.Clients {
			apps = append(apps, p.clientName(ctx, c))
		}
		rows = append(rows, accountSession{SID: o.ID, Created: o.Created.Format(timeForPeople), LastSeen: o.LastSeen.Format(timeForPeople),
			Modules: strings.Join(mods, ", "), Clients: strings.Join(apps, ", "), Current: o.ID == s.ID, Device: o.Device, IP: o.IP})
	}
	apps, err := p.appsWithAccess(ctx, user.Subject)
	if err != nil {
		p.serverErrorPage(w, "listing applications", err)
		return
	}
	parts, err := p.accountParts(r, user)
	if err != nil {
		p.serverErrorPage(w, "listing sign-in methods", err)
		return
	}
	web.Render(w, http.StatusOK, "account.html", web.Page{Title: "Your account", Static: p.staticPath(),
		Data: struct {
			User, Action, CSRF string
			Sessions           []accountSession
			Apps               []accountApp
			Parts              []accountPart
		}{user.Username, p.prefix + PathAccount, csrf, rows, apps, parts}})
}

// timeForPeople is how the account page gives times: the same in every
// language.
const timeForPeople = "2006-01-02 15:04 MST"

// accountApp is an application with access: consented to, or holding
// refresh tokens.
type accountApp struct {
	ClientID, Name string
	// Granted are what the application was allowed (texts pages translate).
	Granted []string
	Offline bool
}

// appsWithAccess lists the clients sub consented to or that hold its
// refresh tokens.
func (p *Provider) appsWithAccess(ctx context.Context, sub string) ([]accountApp, error) {
	consents, err := p.tokens.consents(ctx, sub)
	if err != nil {
		return nil, err
	}
	fams, err := p.tokens.families(ctx, sub)
	if err != nil {
		return nil, err
	}
	byID := map[string]*accountApp{}
	var order []string
	app := func(id string) *accountApp {
		if a, ok := byID[id]; ok {
			return a
		}
		a := &accountApp{ClientID: id, Name: p.clientName(ctx, id)}
		byID[id] = a
		order = append(order, id)
		return a
	}
	for _, c := range consents {
		var what []string
		for _, it := range c.Granted {
			if d := p.scopes[it].Description; d != "" {
				what = append(what, d)
			} else {
				what = append(what, strings.TrimPrefix(it, claimItem))
			}
		}
		app(c.ClientID).Granted = what
	}
	for _, f := range fams {
		if f.Offline {
			app(f.ClientID).Offline = true
		}
	}
	slices.Sort(order)
	out := make([]accountApp, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// accountActionFailed says a sign-out on the account page did not happen.
func (p *Provider) accountActionFailed(w http.ResponseWriter, err error) {
	p.cfg.Logger.Error("gatehouse provider: sign-out could not be recorded", "error", err)
	p.errorPage(w, http.StatusServiceUnavailable, "Sign-out did not complete",
		"The sign-in service could not record the sign-out, so that session is still active. Go back and try again in a moment.")
}
