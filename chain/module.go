package chain

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/users"
)

// Module is one configured instance of a kind (password, totp, …). What
// the engine knows of every instance — its name, levels, remember,
// state, show_only_when_needed — is configuration the engine keeps
// (ModuleConfig); the module itself has one core method, its page.
//
// A module passes by returning an Identity from one of the capability
// interfaces below, which the engine checks for: FormModule (a posted
// form), RedirectModule (a round trip through another site),
// ScriptedModule (JavaScript and a JSON round trip), MailModule (a link
// or code sent by mail). A kind implements at least one of them; the
// engine refuses to build a chain with a module that implements none.
// UserModule, AdminActions, Applicable and Claimant add to any of them.
//
// A kind is a folder with a settings struct and one Register call;
// nothing in the engine, session or provider changes to add one.
type Module interface {
	// Prompt describes this module's page at its step: the form to fill
	// in, or the button that sends a mail or leaves for another site, or
	// the page a script runs on. a.Subject is set when an earlier module
	// identified the user. The engine renders it in the common look,
	// with the CSRF token, the attempt and the module's name.
	Prompt(ctx context.Context, a *Attempt) (Prompt, error)
}

// FormModule is a module whose page is a form it checks (password,
// TOTP): the engine posts the form to Verify under regulation (every
// failure counts per account and per address).
type FormModule interface {
	Module
	// Verify checks a submitted form. It returns who passed; a zero
	// Identity (and nil error) means "not passed yet, show my page
	// again" (a form of several pages). A *Rejection means the person
	// got it wrong (shown to them, counted as a failure); any other
	// error is a technical failure.
	Verify(ctx context.Context, a *Attempt, form url.Values) (Identity, error)
}

// RedirectModule sends the browser to another site and passes when it
// comes back (a remote OpenID provider, a social login). Its page's
// button (Prompt.Step StepRedirect) makes the engine call Redirect; the
// engine keeps the attempt and what the module needs for the way back,
// single use and bound to this browser, under the state value.
//
// The way back is the instance's callback URL (Deps.CallbackURL, GET or
// POST): the engine checks the state (unknown, used, from another
// browser or for another module: refused and audited), then calls
// Callback under regulation.
type RedirectModule interface {
	Module
	// Redirect returns where to send the browser. state must come back
	// unchanged on the callback (an OAuth state parameter); callback is
	// the URL to come back to. keep is what Callback needs (a PKCE
	// verifier, a nonce); the engine stores it server side and never
	// shows it to the browser.
	Redirect(ctx context.Context, a *Attempt, state, callback string) (to string, keep []byte, err error)
	// Callback passes the module from the request that came back (its
	// query or posted form). Its results mean what Verify's do.
	Callback(ctx context.Context, a *Attempt, r *http.Request, keep []byte) (Identity, error)
}

// ScriptedModule needs JavaScript on its page and a JSON round trip
// (WebAuthn: the options to the browser, the assertion back). The page
// loads exactly the module's script, and its Content-Security-Policy
// allows that script's URL only and fetches to the module's own two
// JSON endpoints only.
//
// The script finds on the page a form with data-begin and data-finish
// (the endpoint URLs) and the hidden fields attempt and csrf. It posts
// JSON ({"attempt", "csrf", "data", "continuation"}) with the header
// Content-Type: application/json; the engine checks the attempt (this
// browser's), the CSRF token and that the module is a step offered now.
// Begin answers {"data", "continuation"}; Finish answers {"next"} (the
// URL to go to) or, with status 4xx, {"error"} (a message for people).
type ScriptedModule interface {
	Module
	// Script is the one script the module's page loads.
	Script() Script
	// Begin answers the page's first request. out goes to the script as
	// JSON; keep (a WebAuthn challenge) goes back sealed, bound to this
	// attempt, browser and module, and comes back to Finish once. Begin
	// checks no secret and writes nothing the engine knows of.
	Begin(ctx context.Context, a *Attempt, in json.RawMessage) (out any, keep []byte, err error)
	// Finish checks the page's answer under regulation, with the keep of
	// the Begin it answers. Its results mean what Verify's do.
	Finish(ctx context.Context, a *Attempt, in json.RawMessage, keep []byte) (Identity, error)
}

// Autofiller is a ScriptedModule that also works from the page of the
// form module offered with it, through the browser's autofill of the
// form's login name field (a passkey offered among the saved names:
// WebAuthn conditional mediation). Where it is offered beside one form
// module, the engine shows the form's page, loading this module's
// script with its two endpoints, with Autofill() added to the
// autocomplete of the form's "username" field, and this module as one
// of the other methods; its own page stays as it is.
type Autofiller interface {
	ScriptedModule
	// Autofill is the autocomplete token to add ("webauthn"); "" when
	// this instance does not autofill.
	Autofill() string
}

// Script is a ScriptedModule's script: a file of the embedded web assets
// (Static, e.g. "webauthn.js"), or a script the kind carries itself
// (Body), which the engine serves under the instance's own path.
type Script struct {
	Static string
	Body   []byte
}

// MailModule sends a link (and a short code) by mail and passes when it
// is used (magic link, activation, password forgotten). Its page's
// button (Prompt.Step StepSend) makes the engine create the link — a
// random single-use token with a lifetime, and a code for typing into
// the browser that asked — and call Send; the person then sees "check
// your mail" (with a field for the code when Mailing.Code). Using the
// link or the code makes the engine call Complete under regulation.
//
// A mail sent counts against the address and the account like a failed
// attempt until its link is used, so nobody can flood an inbox. The
// answer is the same whether or not the form named a known account, and
// takes as long (the engine holds it back to the time real sends take).
type MailModule interface {
	Module
	// Mailing says how this instance's links behave. The engine asks
	// once, when the chain is built.
	Mailing() Mailing
	// Send mails l (Deps.Mailer) to the person this step is for: the
	// user identified so far, or the one the posted form names (as a
	// first step). It returns the subject the mail went to, "" when the
	// form named nobody (nothing is sent, and the person is told the
	// same as when something was). A *Rejection is a form to correct.
	Send(ctx context.Context, a *Attempt, form url.Values, l Link) (subject string, err error)
	// Complete passes the module once a link or code it sent was used
	// in this attempt; subject is the one Send returned. A zero
	// Identity means "not passed yet, show my page again" (a password
	// reset asks for the new password next).
	Complete(ctx context.Context, a *Attempt, subject string) (Identity, error)
}

// Mailing is how a MailModule's links behave.
type Mailing struct {
	// TTL is how long a link and its code work. Default 15 minutes.
	TTL time.Duration
	// Code: the "check your mail" page has a field for the code in the
	// mail, for a person who reads it on another device.
	Code bool
	// Elsewhere is what a link opened in another browser than the one
	// that asked does.
	Elsewhere Elsewhere
}

// Elsewhere is what a mailed link opened in another browser does.
type Elsewhere int

const (
	// SameBrowserOnly (the default): the link works only in the browser
	// that asked; elsewhere a page says to open it there or to type the
	// code there, and the link stays unused (a Redeemer's is redeemed).
	SameBrowserOnly Elsewhere = iota
	// ContinueThere: the sign-in moves to the browser that opened the
	// link (the browser that asked cannot finish it any more). It keeps
	// nothing it had passed except what the link proves, so the new
	// browser is asked again for every other step.
	ContinueThere
)

// Redeemer is a MailModule whose link proves something on its own, apart
// from the sign-in that asked for it (activation: whoever opens it can
// read the account's mail). Its links live for their whole Mailing.TTL,
// not only as long as that sign-in; a link that cannot go on with its
// sign-in — opened in another browser (unless ContinueThere), or once
// the sign-in has ended — is redeemed: the engine spends it and calls
// Redeem, and the person reads what it says. The browser that asked, if
// its sign-in goes on, stops waiting for the mail.
type Redeemer interface {
	MailModule
	// Redeem does what a link mailed to subject (as Send returned it)
	// proves, and says so to the person (a page's title and text). An
	// error is a technical failure.
	Redeem(ctx context.Context, subject string) (title, text string, err error)
}

// Link is what a MailModule mails: the URL to open, and the code to type
// instead in the browser that asked.
type Link struct {
	URL     string
	Code    string
	Expires time.Time
}

// UserModule creates or changes users (registration, activation,
// password forgotten, account linking): besides passing like any
// module, every UserModule of the chain is told of each pass of an
// attempt, by any module, and may change the user then (activate an
// account once its activation level is reached, whichever module
// granted it). The engine re-reads the user after every pass and after
// these calls: a user created, activated, disabled or given a new
// password meanwhile is seen as they are now.
type UserModule interface {
	Module
	// AfterPass is called after a module passed in attempt a, with the
	// user as the engine read them and the levels the attempt has
	// reached. An error is a technical failure.
	AfterPass(ctx context.Context, a *Attempt, u users.User, levels []string) error
}

// AdminActions is a module with commands for administrators (reset a
// user's TOTP, remove their passkeys); the admin API and `caddy
// gatehouse user action` list and run them without knowing the kind.
type AdminActions interface {
	Module
	// Actions lists the module's commands.
	Actions() []Action
	// Act runs the named command (one of Actions) on user u and returns
	// a line for the administrator. It records its own audit event.
	Act(ctx context.Context, action string, u users.User) (string, error)
}

// Action is one admin command of a module.
type Action struct {
	Name        string `json:"action"`
	Description string `json:"description"`
	// ForgetDevices: running it also forgets every browser the user
	// chose to trust, so no "trust this browser" vouches for a factor
	// that was reset.
	ForgetDevices bool `json:"forget_devices,omitempty"`
}

// Applicable is implemented by modules that not every user can do (a
// second factor the user never set up). A module that is not applicable
// is not offered as a next step (unless a requested level needs it).
type Applicable interface {
	Applicable(ctx context.Context, u users.User) (bool, error)
}

// Offerer is implemented by modules that are a way in beside signing in
// rather than a way of signing in — password forgotten, a sign-in link
// by mail, creating an account. Where such a module is offered with one
// that is not (the sign-in form), the engine shows that module's page at
// once and this one as a link under its form, labelled Offer(); offered
// alone, it is a choice labelled the same. Its page links back to the
// others as usual.
type Offerer interface {
	// Offer is the link's label, e.g. "Forgot password?".
	Offer() string
}

// Claimant is implemented by modules whose form names the account it
// tries before anyone is identified (a login name, an address to mail),
// so that failures and mails are regulated per account from the first.
type Claimant interface {
	Claimed(form url.Values) string
}

// Step is what a module page's button does.
type Step string

const (
	// StepVerify (the default) posts the form to FormModule.Verify.
	StepVerify Step = "verify"
	// StepRedirect leaves for RedirectModule.Redirect.
	StepRedirect Step = "redirect"
	// StepSend has MailModule.Send mail a link.
	StepSend Step = "send"
)

// Prompt is a module's page.
type Prompt struct {
	Title  string
	Intro  string
	Fields []Field
	// HTML is extra trusted markup from the module (a QR code, say).
	HTML template.HTML
	// Submit labels the button; "" shows "Continue". A ScriptedModule
	// whose script does all may set NoSubmit.
	Submit   string
	NoSubmit bool
	// Step is what the button does; "" is StepVerify.
	Step Step
	// ScriptButton, for a ScriptedModule, labels the button its script
	// wires up (hidden until the script runs), and NoScript is what the
	// page says when JavaScript is off. Pages translate both.
	ScriptButton, NoScript string
}

// Field is one input of a prompt. Pages translate its Label and
// Placeholder.
type Field struct {
	Name, Label, Type, Value, Autocomplete, InputMode, Placeholder string
	Autofocus                                                      bool
	// Optional fields may be left empty; MaxLength, when set, bounds
	// the input in the browser.
	Optional  bool
	MaxLength int
}

// Rejection is a failed attempt the person can correct; Message is shown.
type Rejection struct{ Message string }

func (r *Rejection) Error() string { return r.Message }

// Reject returns a *Rejection with msg.
func Reject(msg string) error { return &Rejection{Message: msg} }

// IsRejection reports whether err is a *Rejection.
func IsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	ok := errors.As(err, &r)
	return r, ok
}
