// Package passwordreset is the "password forgotten" module kind
// (password_reset): it asks for a username or email address, mails the
// account a single-use link, and once the link (in the browser that
// asked, unless other_browser says continue) comes back it asks for a
// new password under the password policy, sets it, and signs the person
// in. Setting a password ends the user's other sessions (the engine does
// it for Identity.EndSessions, unless keep_sessions_on_password_change).
//
// The pass reports amr "otp" only: what the person proved is control of
// the mailbox, by a single-use secret sent there (RFC 8176 has no value
// for mail; the contract spells a mailed link "otp"). Choosing a new
// password proves nothing about them, so "pwd" is not claimed — and
// "pwd" beside "otp" would make the tokens say "mfa", two factors, for
// what is one.
//
// Its records (the attempt whose link came back, and where the mail
// went) live in the instance's own store.
package passwordreset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/chain/internal/maillink"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	chain.Register("password_reset", New)
}

// Settings of a password_reset module: link_ttl and other_browser (see
// maillink.Settings).
type Settings = maillink.Settings

// Module is one password_reset instance.
type Module struct {
	d       chain.Deps
	mailing chain.Mailing
	sender  maillink.Sender
}

// New builds the module.
func New(d chain.Deps, s Settings) (chain.Module, error) {
	sender, mailing, err := maillink.New(d, s, mail.PasswordReset, false)
	if err != nil {
		return nil, err
	}
	return &Module{d: d, mailing: mailing, sender: sender}, nil
}

// keyReady + attempt id: the attempt's link came back; it may set the
// password of the subject kept there, once.
const keyReady = "ready:"

type ready struct {
	Subject string `json:"sub"`
}

// Offer labels the link to this module under the sign-in form.
func (m *Module) Offer() string { return "Forgot password?" }

// Mailing: single-use links with no code (the password_reset mail has
// none), working in the browser that asked unless other_browser says
// continue.
func (m *Module) Mailing() chain.Mailing { return m.mailing }

// Claimed is the account the first page names.
func (m *Module) Claimed(form url.Values) string { return maillink.Claimed(form) }

// Prompt asks for the account to mail; once the link came back, for the
// new password.
func (m *Module) Prompt(ctx context.Context, a *chain.Attempt) (chain.Prompt, error) {
	r, err := m.ready(ctx, a)
	if err != nil {
		return chain.Prompt{}, err
	}
	if r.Subject != "" {
		intro := "Choose a new password."
		if u, err := m.d.Users.Get(ctx, r.Subject); err == nil {
			intro = "Choose a new password for " + u.Username + "."
		}
		return chain.Prompt{Title: "Choose a new password", Intro: intro, Submit: "Set the password", Fields: []chain.Field{
			{Name: "password", Label: "New password", Type: "password", Autocomplete: "new-password", Autofocus: true},
			{Name: "confirm", Label: "New password again", Type: "password", Autocomplete: "new-password"},
		}}, nil
	}
	p := chain.Prompt{Title: "Forgot your password?", Submit: "Mail me a link", Step: chain.StepSend, Fields: maillink.AskFields(a),
		Intro: "Enter your username or email address. If an account has it, we mail it a link to choose a new password."}
	if a.Subject != "" {
		p.Intro = "We mail you a link to choose a new password."
	}
	return p, nil
}

// Send mails the reset link to the account the form names (or the
// identified user); "" when no account gets one.
func (m *Module) Send(ctx context.Context, a *chain.Attempt, form url.Values, l chain.Link) (string, error) {
	u, err := m.sender.Send(ctx, a, form, l, nil)
	if err != nil {
		return "", err
	}
	ev := audit.Event{Event: audit.PasswordReset, Reason: "requested", Module: m.d.Name, Client: a.Req.ClientID,
		User: u.Username, Subject: u.Subject}
	if u.Subject == "" {
		ev.Reason, ev.Attempted = "requested: no account, nothing sent", maillink.Claimed(form)
	}
	m.d.Audit.Record(ctx, ev)
	return u.Subject, nil
}

// Complete takes the link's return: the attempt may now set subject's
// password, and the page asks for it.
func (m *Module) Complete(ctx context.Context, a *chain.Attempt, subject string) (chain.Identity, error) {
	u, err := m.sender.Proved(ctx, a, subject)
	if err != nil {
		return chain.Identity{}, err
	}
	if u.Disabled {
		// Passing makes the engine refuse the disabled account; no
		// password is set.
		return chain.Identity{Subject: subject, AMR: []string{chain.AMROTP}}, nil
	}
	ttl := min(m.mailing.TTL, a.Expires.Sub(m.d.Now()))
	if ttl <= 0 {
		return chain.Identity{}, chain.Reject("This sign-in has expired. Go back to the application and start again.")
	}
	b, _ := json.Marshal(ready{Subject: subject})
	if err := m.d.Store.Set(ctx, keyReady+a.ID, b, ttl); err != nil {
		return chain.Identity{}, fmt.Errorf("password_reset: keeping the used link: %w", err)
	}
	return chain.Identity{}, nil
}

// Verify sets the new password, once per link, and passes.
func (m *Module) Verify(ctx context.Context, a *chain.Attempt, form url.Values) (chain.Identity, error) {
	r, err := m.ready(ctx, a)
	if err != nil {
		return chain.Identity{}, err
	}
	if r.Subject == "" {
		return chain.Identity{}, chain.Reject("The link was used already or has expired. Ask for a new message.")
	}
	pw := form.Get("password")
	switch {
	case pw == "":
		return chain.Identity{}, chain.Reject("Enter a new password.")
	case pw != form.Get("confirm"):
		return chain.Identity{}, chain.Reject("The two passwords are not the same.")
	}
	u, err := m.d.Users.Get(ctx, r.Subject)
	if err != nil {
		return chain.Identity{}, err
	}
	if u.Disabled {
		return chain.Identity{Subject: u.Subject, AMR: []string{chain.AMROTP}}, nil
	}
	if u.Federation != nil {
		// Said to whoever proved the mailbox only.
		return chain.Identity{}, chain.Reject("Your password is kept in your organisation's directory, not here: change it there.")
	}
	if err := m.d.Users.CheckPassword(pw, u); err != nil {
		return chain.Identity{}, policy(err)
	}
	// One password per link: of two forms sent at once, one sets it.
	raw, err := m.d.Store.Take(ctx, keyReady+a.ID)
	if errors.Is(err, store.ErrNotFound) {
		return chain.Identity{}, chain.Reject("The link was used already or has expired. Ask for a new message.")
	} else if err != nil {
		return chain.Identity{}, err
	}
	if _, err := m.d.Users.SetPassword(ctx, u.Subject, pw); err != nil {
		// Not set (busy, the store, a policy changed meanwhile): the
		// link's return stays good for another try.
		if perr := m.d.Store.Set(ctx, keyReady+a.ID, raw, max(a.Expires.Sub(m.d.Now()), time.Second)); perr != nil {
			m.d.Logger.Error("gatehouse password_reset: keeping the used link after a failure", "error", perr)
		}
		return chain.Identity{}, policy(err)
	}
	m.d.Audit.Record(ctx, audit.Event{Event: audit.PasswordReset, Reason: "completed", Module: m.d.Name, Client: a.Req.ClientID,
		User: u.Username, Subject: u.Subject})
	return chain.Identity{Subject: u.Subject, AMR: []string{chain.AMROTP}, EndSessions: true}, nil
}

// policy turns the password policy's refusal into a message for the
// person; other errors stay technical.
func policy(err error) error {
	var pe *users.PolicyError
	if errors.As(err, &pe) {
		return chain.Reject(pe.Message)
	}
	return err
}

// ready is the attempt's used link, if any.
func (m *Module) ready(ctx context.Context, a *chain.Attempt) (ready, error) {
	var r ready
	b, err := m.d.Store.Get(ctx, keyReady+a.ID)
	if errors.Is(err, store.ErrNotFound) {
		return r, nil
	} else if err != nil {
		return r, fmt.Errorf("password_reset: reading the used link: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("password_reset: decoding the used link: %w", err)
	}
	return r, nil
}

var (
	_ chain.MailModule = (*Module)(nil)
	_ chain.FormModule = (*Module)(nil)
	_ chain.Claimant   = (*Module)(nil)
	_ chain.Offerer    = (*Module)(nil)
)
