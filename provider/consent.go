package provider

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// PathConsent takes the consent page's answer.
const PathConsent = "/consent"

const (
	purposeConsent = "consent"
	keyConsentDone = "consent-done:"
	// claimItem prefixes a claim asked for on its own (claims parameter).
	claimItem = "claim:"
)

// consentItem is one line of the consent page.
type consentItem struct {
	Key, Description string
	Required         bool
}

// consentItems are what a request asks the person for: its scopes but
// openid, and the claims the claims parameter names that none of those
// scopes releases.
func (p *Provider) consentItems(req *authRequest) []consentItem {
	var items []consentItem
	for _, s := range req.Scopes {
		if s != "openid" {
			items = append(items, consentItem{Key: s, Description: p.scopes[s].Description, Required: slices.Contains(req.Required, s)})
		}
	}
	for _, c := range req.Claims.userClaims() {
		if !p.scopes.releasable(req.Scopes, c) {
			items = append(items, consentItem{Key: claimItem + c, Description: web.Sprintf("Your %s", strings.ReplaceAll(c, "_", " "))})
		}
	}
	return items
}

func itemKeys(items []consentItem, only func(consentItem) bool) []string {
	var out []string
	for _, it := range items {
		if only == nil || only(it) {
			out = append(out, it.Key)
		}
	}
	return out
}

// approve turns the granted items into what the client gets.
func (p *Provider) approve(req *authRequest, granted []string) approval {
	a := approval{Scopes: []string{"openid"}}
	for _, s := range req.Scopes {
		if s != "openid" && slices.Contains(granted, s) {
			a.Scopes = append(a.Scopes, s)
		}
	}
	var claims []string
	for _, c := range req.Claims.userClaims() {
		if slices.Contains(granted, claimItem+c) || slices.ContainsFunc(a.Scopes, func(s string) bool { return slices.Contains(p.scopes[s].Claims, c) }) {
			claims = append(claims, c)
		}
	}
	a.Claims = req.Claims.keep(claims)
	return a
}

// finish is where a signed-in person's authorization goes once the chain
// is satisfied: consent (asked, remembered or not needed), then the
// response.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, req *authRequest, client *Client, s *session.Session, user users.User, out chain.Outcome) {
	ctx := r.Context()
	if req.EssentialACR && !out.Satisfied {
		p.redirectError(w, r, req.target(), &oauthError{Code: "access_denied",
			Description: "the essential acr (" + strings.Join(req.AcrValues, " ") + ") could not be reached"})
		return
	}
	items := p.consentItems(req)
	all := itemKeys(items, nil)
	if len(items) == 0 && !req.prompt("consent") {
		p.respond(w, r, req, client, s, user, out, p.approve(req, nil))
		return
	}
	if client.FirstParty && !req.prompt("consent") {
		p.respond(w, r, req, client, s, user, out, p.approve(req, all))
		return
	}
	if !req.prompt("consent") {
		c, err := p.tokens.consent(ctx, user.Subject, client.ID)
		if err != nil {
			p.serverErrorPage(w, "loading consent", err)
			return
		}
		if c != nil && c.covers(all, req.Required) {
			p.respond(w, r, req, client, s, user, out, p.approve(req, c.Granted))
			return
		}
	}
	if req.prompt("none") {
		p.redirectError(w, r, req.target(), &oauthError{Code: "consent_required", Description: "the user has not consented to what the client asks"})
		return
	}
	p.consentPage(w, r, req, client, s, items)
}

// sealedConsent is what the consent form carries: the request and the
// session it was shown in.
type sealedConsent struct {
	Req authRequest `json:"req"`
	SID string      `json:"sid"`
}

// consentPage asks the person what the client may have. Every item is
// ticked; the required ones cannot be unticked.
func (p *Provider) consentPage(w http.ResponseWriter, r *http.Request, req *authRequest, client *Client, s *session.Session, items []consentItem) {
	web.PreferLocales(w, req.UILocales)
	sealed, err := p.cfg.Sessions.Seal(purposeConsent, sealedConsent{Req: *req, SID: s.ID}, authReqTTL)
	if err != nil {
		p.serverErrorPage(w, "sealing the consent request", err)
		return
	}
	browser := p.cfg.Sessions.BrowserID(w, r)
	web.Render(w, http.StatusOK, "consent.html", web.Page{Title: "Allow access?", Static: p.staticPath(),
		Data: struct {
			Client, Action, Req, CSRF string
			Items                     []consentItem
			Offline                   bool
		}{client.DisplayName(), p.prefix + PathConsent, sealed, p.cfg.Sessions.CSRFToken(browser, purposeConsent+":"+req.ID),
			items, slices.Contains(req.Scopes, "offline_access")}})
}

// consent takes the consent page's answer.
func (p *Provider) consent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Answer the consent page with its buttons.")
		return
	}
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var sc sealedConsent
	browser := p.cfg.Sessions.BrowserID(w, r)
	if r.ParseForm() != nil || p.cfg.Sessions.Open(purposeConsent, r.PostForm.Get("req"), &sc) != nil ||
		sc.Req.Browser != browser || !p.cfg.Sessions.CheckCSRF(browser, purposeConsent+":"+sc.Req.ID, r.PostForm.Get("csrf")) {
		p.errorPage(w, http.StatusForbidden, "This page has expired", "Go back to the application and start again.")
		return
	}
	req := &sc.Req
	web.PreferLocales(w, req.UILocales)
	s, user, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	if s == nil || s.ID != sc.SID {
		p.redirectError(w, r, req.target(), &oauthError{Code: "login_required", Description: "the sign-in session changed before consent was given"})
		return
	}
	client, ok := p.stillRegistered(w, ctx, req)
	if !ok {
		return
	}
	out, ok := p.satisfied(w, r, req, s, &oauthError{Code: "login_required", Description: "the sign-in no longer meets the request"})
	if !ok || !p.once(w, r, keyConsentDone+req.ID, "Already answered", "This request was already answered. Go back to the application.") {
		return
	}
	items := p.consentItems(req)
	ev := audit.Event{Client: client.ID, Subject: user.Subject, User: user.Username, SID: s.ID, IP: regulate.ClientIP(r)}
	if r.PostForm.Get("action") != "allow" {
		ev.Event, ev.Reason = audit.ConsentGiven, "denied"
		p.cfg.Audit.Record(ctx, ev)
		p.redirectError(w, r, req.target(), &oauthError{Code: "access_denied", Description: "the user did not allow access"})
		return
	}
	ticked := r.PostForm["grant"]
	granted := itemKeys(items, func(it consentItem) bool { return it.Required || slices.Contains(ticked, it.Key) })
	if err := p.tokens.rememberConsent(ctx, user.Subject, client.ID, itemKeys(items, nil), granted); err != nil {
		p.serverErrorPage(w, "recording consent", err)
		return
	}
	ev.Event, ev.Reason = audit.ConsentGiven, "granted: "+strings.Join(granted, " ")
	p.cfg.Audit.Record(ctx, ev)
	p.respond(w, r, req, client, s, user, out, p.approve(req, granted))
}
