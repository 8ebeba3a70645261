package chain

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/web"
)

// A MailModule's link: a random token (256 bits) in the URL and an
// eight-digit code, stored only as hashes, single use, short-lived, tied
// to the attempt, the browser that asked and the module. A new mail for
// the same step replaces the last one.

const (
	keyMail        = "mail:"    // + hash of the token: the mailing
	keyMailOf      = "mail-of:" // + attempt id + ":" + module: its token's hash
	stepCode  Step = "code"
	// defaultMailTTL is a link's life when the module says none.
	defaultMailTTL = 15 * time.Minute
	codeDigits     = 8
	maxMailToken   = 64
)

type mailRecord struct {
	Attempt string    `json:"attempt"`
	Browser string    `json:"browser"`
	Module  string    `json:"module"`
	Subject string    `json:"sub,omitempty"`
	Code    string    `json:"code"` // hash
	Expires time.Time `json:"exp"`
	// Remember: "trust this browser" was ticked when the mail was asked
	// for; it holds only for that browser.
	Remember bool `json:"remember,omitempty"`
}

func mailOfKey(a *Attempt, n *node) string { return mailOf(a.ID, n) }

func mailOf(attempt string, n *node) string { return keyMailOf + attempt + ":" + n.Name }

// mailSent reports whether a link of n's is waiting to be used in a.
func (e *Engine) mailSent(ctx context.Context, a *Attempt, n *node) (bool, error) {
	if !a.stored {
		return false, nil
	}
	_, err := e.opt.Store.Get(ctx, mailOfKey(a, n))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%0*d", codeDigits, n)
}

// sendMail has a MailModule mail a new link. Sending counts against the
// address and the account (the one identified, or the one the form
// names) like a failed attempt, until a link is used: nobody can flood
// an inbox, and a send never clears a count.
func (e *Engine) sendMail(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, mm MailModule) {
	ctx, start := r.Context(), time.Now()
	g, ok := e.startCounted(w, r, a, n, r.PostForm)
	if !ok {
		return
	}
	now := e.opt.Sessions.Now()
	ttl := n.mailing.TTL
	if _, ok := mm.(Redeemer); !ok {
		ttl = min(ttl, a.Expires.Sub(now)) // the link is no use without its sign-in
	}
	if !now.Before(a.Expires) {
		e.fail(w, errAttemptGone)
		return
	}
	token, code := randomID()+randomID(), newCode()
	link := Link{URL: e.origin + e.moduleBase(n.Name) + "/mail?" + url.Values{"t": {token}}.Encode(), Code: code, Expires: now.Add(ttl)}
	sub, err := mm.Send(ctx, a, r.PostForm, link)
	if rej, ok := IsRejection(err); ok {
		e.showAttempt(w, r, a, n.Name, rej.Message)
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	// The records are written whether or not a mail went out: the answer
	// does not tell a known address from an unknown one.
	rec, _ := json.Marshal(mailRecord{Attempt: a.ID, Browser: a.Browser, Module: n.Name, Subject: sub, Code: hashKey(code), Expires: link.Expires,
		Remember: r.PostForm.Get("remember") == "on"})
	if err := e.saveAttempt(ctx, a); err != nil {
		e.fail(w, err)
		return
	}
	h := hashKey(token)
	ops := []store.Op{store.Put(keyMail+h, rec, ttl), store.Put(mailOfKey(a, n), []byte(h), ttl)}
	if old, err := e.opt.Store.Get(ctx, mailOfKey(a, n)); err == nil {
		ops = append(ops, store.Delete(keyMail+string(old)))
	}
	if err := e.opt.Store.Apply(ctx, ops...); err != nil {
		e.fail(w, fmt.Errorf("saving a mailed link: %w", err))
		return
	}
	ev := audit.Event{Event: audit.LinkMailed}
	if sub == "" {
		ev.Reason = "no account: nothing sent"
	}
	e.record(ctx, ev, g, a, n)
	e.mailTiming.wait(ctx, start, sub != "")
	http.Redirect(w, r, e.stepURL(a, n.Name), http.StatusSeeOther)
}

// showMailSent is the "check your mail" page, with the code field when
// the module gives codes.
func (e *Engine) showMailSent(w http.ResponseWriter, a *Attempt, n *node, offered []*node, message string) {
	p := Prompt{Title: "Check your mail", Step: stepCode, NoSubmit: !n.mailing.Code,
		Intro: web.Sprintf("If the address is known here, a message with a link is on its way. The link works once, for %s.", web.Duration(n.mailing.TTL))}
	if n.mailing.Code {
		p.Intro = web.Sprintf("If the address is known here, a message with a link is on its way. The link works once, for %s. Or enter the code from the message here.", web.Duration(n.mailing.TTL))
		p.Fields = []Field{{Name: "mail_code", Label: "Code", Type: "text", InputMode: "numeric", Autocomplete: "one-time-code", Autofocus: true}}
	}
	e.render(w, a, n, offered, p, message, choice{Name: "Send a new message", URL: e.stepURL(a, n.Name) + "&again=1"})
}

// enterCode checks a mailed code typed in the browser that asked.
func (e *Engine) enterCode(w http.ResponseWriter, r *http.Request, a *Attempt, n *node, mm MailModule) {
	ctx := r.Context()
	h, err := e.opt.Store.Get(ctx, mailOfKey(a, n))
	var rec mailRecord
	if err == nil {
		rec, err = e.mailing(ctx, string(h))
	}
	if errors.Is(err, store.ErrNotFound) {
		e.showAttempt(w, r, a, n.Name, "The code has expired. Ask for a new message.")
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	sub := a.Subject
	if sub == "" {
		sub = rec.Subject
	}
	g, err := e.guardFor(ctx, r, sub, n, nil)
	if err != nil {
		e.fail(w, err)
		return
	}
	code := strings.Join(strings.Fields(r.PostForm.Get("mail_code")), "")
	e.conclude(w, r, a, n, g, false, r.PostForm.Get("remember") == "on", func() (Identity, error) {
		if len(code) != codeDigits || rec.Subject == "" || subtle.ConstantTimeCompare([]byte(hashKey(code)), []byte(rec.Code)) != 1 {
			return Identity{}, Reject("Wrong code.")
		}
		return e.spendMailing(ctx, a, n, string(h), rec, mm)
	})
}

func (e *Engine) mailing(ctx context.Context, h string) (mailRecord, error) {
	var rec mailRecord
	b, err := e.opt.Store.Get(ctx, keyMail+h)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decoding a mailed link: %w", err)
	}
	return rec, nil
}

// spendMailing uses a mailing up (once, whoever comes first: the link
// or the code) and has the module complete.
func (e *Engine) spendMailing(ctx context.Context, a *Attempt, n *node, h string, rec mailRecord, mm MailModule) (Identity, error) {
	if _, err := e.opt.Store.Take(ctx, keyMail+h); errors.Is(err, store.ErrNotFound) {
		return Identity{}, Reject("This link or code was already used, or has expired. Ask for a new message.")
	} else if err != nil {
		return Identity{}, err
	}
	if err := e.opt.Store.Delete(ctx, mailOfKey(a, n)); err != nil {
		return Identity{}, err
	}
	return mm.Complete(ctx, a, rec.Subject)
}

// mailLink serves a mailed link: GET shows a page with a button (mail
// scanners that fetch links spend nothing), POST uses the link.
func (e *Engine) mailLink(w http.ResponseWriter, r *http.Request, n *node, mm MailModule) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		web.Error(w, e.opt.StaticPath, http.StatusBadRequest, "Bad request", "The link could not be read.")
		return
	}
	token := r.Form.Get("t")
	if token == "" || len(token) > maxMailToken {
		e.badLink(w, r, n, "mailed link malformed")
		return
	}
	h := hashKey(token)
	browser := e.opt.Sessions.BrowserID(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if _, err := e.mailing(ctx, h); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				e.badLink(w, r, n, "mailed link unknown, used or expired")
			} else {
				e.fail(w, err)
			}
			return
		}
		d := loginData{Action: e.moduleBase(n.Name) + "/mail", CSRF: e.opt.Sessions.CSRFToken(browser, "mail:"+h), Token: token,
			Prompt: Prompt{Title: n.Name, Intro: "Continue to use the link from your message.", Submit: "Continue"}}
		web.Render(w, http.StatusOK, "login.html", web.Page{Title: n.Name, Static: e.opt.StaticPath, Data: &d})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		web.Error(w, e.opt.StaticPath, http.StatusMethodNotAllowed, "Method not allowed", "This page accepts GET and POST only.")
		return
	}
	if !e.opt.Sessions.CheckCSRF(browser, "mail:"+h, r.PostForm.Get("csrf")) {
		web.Error(w, e.opt.StaticPath, http.StatusForbidden, "This form has expired",
			"The form was not sent from this page. Open the link from your message again.")
		return
	}
	rec, err := e.mailing(ctx, h)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && rec.Module != n.Name):
		e.badLink(w, r, n, "mailed link unknown, used or expired")
		return
	case err != nil:
		e.fail(w, err)
		return
	}
	elsewhere := rec.Browser != browser
	if rd, ok := mm.(Redeemer); ok {
		goesOn, err := e.goesOn(ctx, rec)
		if err != nil {
			e.fail(w, err)
			return
		}
		if !goesOn || elsewhere && n.mailing.Elsewhere != ContinueThere {
			e.redeem(w, r, n, h, rec, rd)
			return
		}
	}
	if elsewhere && n.mailing.Elsewhere != ContinueThere {
		g, _ := e.guardFor(ctx, r, rec.Subject, n, nil)
		e.record(ctx, audit.Event{Event: audit.LoginFailed, Reason: "mailed link opened in another browser"}, g, nil, n)
		msg := "Open the link in the browser where you asked for it."
		if n.mailing.Code {
			msg += " Or type the code from the message there."
		}
		web.Error(w, e.opt.StaticPath, http.StatusConflict, "Open this link where you signed in", msg)
		return
	}
	e.resume(w, r, rec.Attempt, rec.Browser, n, rec.Subject, elsewhere, rec.Remember && !elsewhere, func(a *Attempt) (Identity, error) {
		if elsewhere {
			if err := e.moveTo(w, r, a); err != nil {
				return Identity{}, err
			}
		}
		return e.spendMailing(ctx, a, n, h, rec, mm)
	})
}

// goesOn reports whether the sign-in that asked for a mailing can still
// use it: stored, not finished, locked or expired.
func (e *Engine) goesOn(ctx context.Context, rec mailRecord) (bool, error) {
	_, err := e.storedAttempt(ctx, rec.Attempt, rec.Browser)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errAttemptGone), errors.Is(err, errAttemptLocked):
		return false, nil
	}
	return false, err
}

// redeem spends a Redeemer's link that cannot go on with its sign-in and
// has the module do what it proves. Mailing it was counted like a
// failed attempt until it was used: using it settles that.
func (e *Engine) redeem(w http.ResponseWriter, r *http.Request, n *node, h string, rec mailRecord, rd Redeemer) {
	ctx := r.Context()
	g, ok := e.outsideGuard(w, r, rec.Subject, n, false)
	if !ok {
		return
	}
	if _, err := e.opt.Store.Take(ctx, keyMail+h); errors.Is(err, store.ErrNotFound) {
		e.badLink(w, r, n, "mailed link used or expired")
		return
	} else if err != nil {
		e.fail(w, err)
		return
	}
	// The page that asked, if its sign-in goes on, stops waiting.
	if err := e.opt.Store.Delete(ctx, mailOf(rec.Attempt, n)); err != nil {
		e.fail(w, err)
		return
	}
	title, text, err := rd.Redeem(ctx, rec.Subject)
	e.passed(ctx, g)
	if err != nil {
		e.fail(w, err)
		return
	}
	web.Render(w, http.StatusOK, "notice.html", web.Page{Title: title, Static: e.opt.StaticPath,
		Data: struct{ Text, Link, LinkText string }{Text: text}})
}
