package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// The verification page (RFC 8628 §3.3): the person types the user code
// (prefilled from verification_uri_complete, still a click), signs in
// through the chain, and is asked "Allow <client> on your device?" with
// the code to compare and what the scopes release (§5.4: a link can be
// sent by someone else, so the person always sees who asks and which
// code). Every form carries a CSRF token bound to the browser.

const (
	purposeDevice     = "device"
	csrfDeviceCode    = "device-code"
	maxDeviceFormSize = 16 << 10
)

// deviceRef is the authorization a browser is deciding on. It is not
// stored: it travels sealed (bound to the browser, expiring with the
// code) through the chain's return URL and the allow form.
type deviceRef struct {
	// ID binds the allow form's CSRF token to this one decision.
	ID       string `json:"id"`
	Browser  string `json:"browser"`
	Key      string `json:"key"` // the record's store key
	UserCode string `json:"user_code"`
	ClientID string `json:"client_id"`
	// Login: the browser went through the chain for it.
	Login bool `json:"login,omitempty"`
}

// devicePage serves the verification page.
func (p *Provider) devicePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "The device page takes GET or POST.")
		return
	}
	if len(r.URL.RawQuery) > maxQueryBytes {
		p.errorPage(w, http.StatusRequestURITooLong, "Request too large", "The address is too long.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxDeviceFormSize)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Has("req"):
		p.deviceConfirm(w, r, r.URL.Query().Get("req"))
	case r.Method == http.MethodGet:
		p.deviceCodeForm(w, r, http.StatusOK, r.URL.Query().Get("user_code"), "")
	case r.PostForm.Has("req"):
		p.deviceDecide(w, r)
	default:
		p.deviceEnterCode(w, r)
	}
}

// deviceCodeForm shows the form to type a user code, prefilled with code.
func (p *Provider) deviceCodeForm(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	browser := p.cfg.Sessions.BrowserID(w, r)
	if uc, ok := normalizeUserCode(code); ok {
		code = formatUserCode(uc)
	} else if len(code) > 32 {
		code = ""
	}
	web.Render(w, status, "device.html", web.Page{Title: "Connect a device", Static: p.staticPath(), Message: message,
		Data: struct{ Action, CSRF, Code string }{p.prefix + PathDevice, p.cfg.Sessions.CSRFToken(browser, csrfDeviceCode), code}})
}

// deviceEnterCode takes a typed user code: regulated by address, since
// the code is all that stands between a guesser and someone's device.
func (p *Provider) deviceEnterCode(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	browser := p.cfg.Sessions.BrowserID(w, r)
	typed := r.PostForm.Get("user_code")
	if !p.cfg.Sessions.CheckCSRF(browser, csrfDeviceCode, r.PostForm.Get("csrf")) {
		p.deviceCodeForm(w, r, http.StatusForbidden, typed, "This form has expired. Check the code and continue again.")
		return
	}
	uc, ok := normalizeUserCode(typed)
	if !ok {
		p.deviceCodeForm(w, r, http.StatusBadRequest, typed, "That is not a device code. A code has 8 letters, like BCDF-GHJK.")
		return
	}
	ip := regulate.ClientIP(r)
	keys := []regulate.Key{regulate.IP(ip)}
	if p.cfg.Regulate != nil {
		blocked, err := p.cfg.Regulate.Begin(ctx, keys...)
		if err != nil {
			p.serverErrorPage(w, "regulation", err)
			return
		}
		if blocked != nil {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RateLimited, IP: ip, Key: blocked.Key.String(), Reason: "device user code"})
			p.deviceCodeForm(w, r, http.StatusTooManyRequests, typed,
				web.Sprintf("Too many wrong codes were typed from your network. Try again in %s.", web.Duration(blocked.RetryAfter)))
			return
		}
	}
	key, rec, err := p.tokens.deviceByUserCode(ctx, uc)
	if errors.Is(err, errUserCodeGone) {
		p.userCodeFailed(ctx, ip, keys)
		p.deviceCodeForm(w, r, http.StatusBadRequest, typed,
			"This code is not valid, has expired or was already used. Check the code your device shows, or start again on the device.")
		return
	}
	if p.cfg.Regulate != nil {
		if err := p.cfg.Regulate.Succeed(ctx, keys...); err != nil {
			p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
		}
	}
	if err != nil {
		p.serverErrorPage(w, "looking up user code", err)
		return
	}
	client, err := p.cfg.Clients.Get(ctx, rec.ClientID)
	if err != nil {
		p.errorPage(w, http.StatusBadRequest, "Unknown application", "The application on your device is no longer registered with this sign-in service.")
		return
	}
	ref := deviceRef{ID: randomToken()[:22], Browser: browser, Key: key, UserCode: uc, ClientID: client.ID}
	s, _, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	if s != nil {
		out, err := p.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, nil, time.Time{})
		if err != nil {
			p.serverErrorPage(w, "evaluating session", err)
			return
		}
		if out.Done {
			u, err := p.deviceURL(&ref, rec.Expires)
			if err != nil {
				p.serverErrorPage(w, "sealing the device request", err)
				return
			}
			http.Redirect(w, r, u, http.StatusSeeOther)
			return
		}
	}
	ref.Login = true
	ret, err := p.deviceURL(&ref, rec.Expires)
	if err != nil {
		p.serverErrorPage(w, "sealing the device request", err)
		return
	}
	if err := p.cfg.Chain.Start(w, r, chain.Request{ReturnTo: ret, Client: client.DisplayName(), ClientID: client.ID}); err != nil {
		p.serverErrorPage(w, "starting login", err)
	}
}

// userCodeFailed counts and audits a wrong user code.
func (p *Provider) userCodeFailed(ctx context.Context, ip string, keys []regulate.Key) {
	p.cfg.Audit.Record(ctx, audit.Event{Event: audit.UserCodeFailed, IP: ip})
	if p.cfg.Regulate == nil {
		return
	}
	bans, err := p.cfg.Regulate.Fail(ctx, keys...)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
	}
	for _, b := range bans {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.Banned, Key: b.Key.String(), Until: b.Until, Reason: "device user code"})
	}
}

// deviceURL is the verification page for ref, sealed until the code
// expires.
func (p *Provider) deviceURL(ref *deviceRef, expires time.Time) (string, error) {
	ttl := min(authReqTTL, expires.Sub(p.cfg.Sessions.Now()))
	sealed, err := p.cfg.Sessions.Seal(purposeDevice, ref, max(ttl, time.Second))
	if err != nil {
		return "", err
	}
	return p.prefix + PathDevice + "?req=" + url.QueryEscape(sealed), nil
}

// deviceSigned is what a step after the code needs: the sealed
// reference, this browser's live session, and the chain's outcome for
// it. It shows an error page and returns ok=false when one is missing.
func (p *Provider) deviceSigned(w http.ResponseWriter, r *http.Request, sealed string) (ref deviceRef, s *session.Session, user users.User, out chain.Outcome, ok bool) {
	ctx := r.Context()
	if len(sealed) > maxQueryBytes || p.cfg.Sessions.Open(purposeDevice, sealed, &ref) != nil ||
		ref.Browser == "" || ref.Browser != p.cfg.Sessions.BrowserID(w, r) {
		p.errorPage(w, http.StatusBadRequest, "Request expired",
			"This device request has expired or belongs to another browser. Open the address your device shows and type its code again.")
		return ref, nil, user, out, false
	}
	s, user, err := p.liveSession(ctx, r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return ref, nil, user, out, false
	}
	if s == nil {
		p.errorPage(w, http.StatusForbidden, "Not signed in",
			"Your sign-in did not complete or has ended, so the device was not connected. Open the address your device shows and type its code again.")
		return ref, nil, user, out, false
	}
	if out, err = p.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, nil, time.Time{}); err != nil {
		p.serverErrorPage(w, "evaluating session", err)
		return ref, nil, user, out, false
	}
	if !out.Done {
		p.errorPage(w, http.StatusForbidden, "Sign-in not completed",
			"Your sign-in is not complete, so the device was not connected. Open the address your device shows and type its code again.")
		return ref, nil, user, out, false
	}
	return ref, s, user, out, true
}

// deviceConfirm asks the signed-in person whether to allow the device.
func (p *Provider) deviceConfirm(w http.ResponseWriter, r *http.Request, sealed string) {
	ctx := r.Context()
	ref, s, user, _, ok := p.deviceSigned(w, r, sealed)
	if !ok {
		return
	}
	rec, err := p.tokens.device(ctx, ref.Key)
	if err != nil && !errors.Is(err, errDeviceUnknown) {
		p.serverErrorPage(w, "loading device code", err)
		return
	}
	if err != nil || rec.Status != devicePending || rec.UserCode != ref.UserCode || !p.cfg.Sessions.Now().Before(rec.Expires) {
		p.deviceGonePage(w)
		return
	}
	if ref.Login {
		p.newBrowserState(w, r) // a sign-in changes the OP browser state
	}
	client := p.clientName(ctx, ref.ClientID)
	var released []string
	for _, sc := range rec.Scopes {
		if d := p.scopes[sc].Description; d != "" {
			released = append(released, d)
		}
	}
	browser := p.cfg.Sessions.BrowserID(w, r)
	web.Render(w, http.StatusOK, "device_allow.html", web.Page{Title: web.Sprintf("Allow %s on your device?", client), Static: p.staticPath(),
		Data: struct {
			Action, CSRF, Req, Client, User, Code string
			Scopes                                []string
		}{p.prefix + PathDevice, p.cfg.Sessions.CSRFToken(browser, csrfDeviceDecision(&ref, s)), sealed, client, user.Username,
			formatUserCode(ref.UserCode), released}})
}

// csrfDeviceDecision is the CSRF purpose of the allow form: this
// decision, in this session (a form shown to another signed-in person
// in the same browser is void).
func csrfDeviceDecision(ref *deviceRef, s *session.Session) string {
	return "device:" + ref.ID + ":" + s.ID
}

// deviceDecide records Allow or Deny.
func (p *Provider) deviceDecide(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ref, s, user, out, ok := p.deviceSigned(w, r, r.PostForm.Get("req"))
	if !ok {
		return
	}
	browser := p.cfg.Sessions.BrowserID(w, r)
	if !p.cfg.Sessions.CheckCSRF(browser, csrfDeviceDecision(&ref, s), r.PostForm.Get("csrf")) {
		p.errorPage(w, http.StatusForbidden, "This form has expired", "Go back, reload the page and try again.")
		return
	}
	client := p.clientName(ctx, ref.ClientID)
	ev := audit.Event{Event: audit.DeviceAuthorized, User: user.Username, Subject: user.Subject, Client: ref.ClientID,
		IP: regulate.ClientIP(r), SID: s.ID}
	switch r.PostForm.Get("decision") {
	case "deny":
		if _, err := p.tokens.decideDevice(ctx, ref.Key, ref.UserCode, func(rec *deviceRecord) { rec.Status = deviceDenied }); err != nil {
			p.deviceDecisionFailed(w, err)
			return
		}
		ev.Reason = "denied"
		p.cfg.Audit.Record(ctx, ev)
		web.Render(w, http.StatusOK, "notice.html", web.Page{Title: "Device not connected", Static: p.staticPath(),
			Data: struct{ Text, Link, LinkText string }{Text: client + " was not given access to your account. You can close this page."}})
	case "allow":
		// The client is recorded in the session first (so that logout
		// reaches what the device gets), and only while the session is
		// live: a logout that came first is not undone.
		_, err := p.cfg.Sessions.Modify(ctx, w, s.ID, func(s *session.Session) error {
			s.AddClient(ref.ClientID)
			return nil
		})
		if errors.Is(err, session.ErrNoSession) {
			p.errorPage(w, http.StatusForbidden, "Signed out",
				"Your session ended before you allowed the device, so it was not connected. Open the address your device shows and type its code again.")
			return
		} else if err != nil {
			p.serverErrorPage(w, "saving session", err)
			return
		}
		_, err = p.tokens.decideDevice(ctx, ref.Key, ref.UserCode, func(rec *deviceRecord) {
			rec.Status = deviceApproved
			rec.Subject, rec.SID = user.Subject, s.ID
			rec.AuthTime, rec.ACR, rec.AMR, rec.Levels = out.AuthTime, out.ACR, out.AMR, out.Levels
		})
		if err != nil {
			p.deviceDecisionFailed(w, err)
			return
		}
		ev.Reason, ev.ACR, ev.AMR = "allowed", out.ACR, out.AMR
		p.cfg.Audit.Record(ctx, ev)
		web.Render(w, http.StatusOK, "notice.html", web.Page{Title: "Device connected", Static: p.staticPath(),
			Data: struct{ Text, Link, LinkText string }{Text: client + " can now use your account on your device. You can close this page."}})
	default:
		p.errorPage(w, http.StatusBadRequest, "Unknown answer", "Go back and choose Allow or Deny.")
	}
}

func (p *Provider) deviceDecisionFailed(w http.ResponseWriter, err error) {
	if errors.Is(err, errUserCodeGone) {
		p.deviceGonePage(w)
		return
	}
	p.serverErrorPage(w, "saving device decision", err)
}

func (p *Provider) deviceGonePage(w http.ResponseWriter) {
	p.errorPage(w, http.StatusBadRequest, "Code expired or used",
		"This code has expired or was already used. Start again on your device to get a new code.")
}
