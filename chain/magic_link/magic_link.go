// Package magiclink is the passwordless sign-in module kind
// (magic_link): it mails the account a single-use link, and in the same
// mail a code to type into the waiting page for a person who reads the
// mail on another device. Using either passes with the module's levels
// and amr "otp" (a single-use secret sent to the mailbox: RFC 8176 has
// no value for mail).
//
// A link opened in another browser than the one that asked is refused
// by default, with a page that says to open it in the browser that
// asked or to type the code there: a link that signed in whichever
// browser opened it would sign a person into an account of someone who
// forwarded them his link (login CSRF), and the code covers the other
// device. other_browser continue lets the sign-in move to the browser
// that opens the link instead.
//
// As a start module it asks for the account; placed after another
// module it mails the identified user without asking.
package magiclink

import (
	"context"
	"net/url"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/chain/internal/maillink"
	"github.com/gatehouse-idp/gatehouse/mail"
)

func init() {
	chain.Register("magic_link", New)
}

// Settings of a magic_link module: link_ttl and other_browser (see
// maillink.Settings).
type Settings = maillink.Settings

// Module is one magic_link instance.
type Module struct {
	mailing chain.Mailing
	sender  maillink.Sender
}

// New builds the module.
func New(d chain.Deps, s Settings) (chain.Module, error) {
	sender, mailing, err := maillink.New(d, s, mail.MagicLink, true)
	if err != nil {
		return nil, err
	}
	return &Module{mailing: mailing, sender: sender}, nil
}

// Offer labels the link to this module under the sign-in form.
func (m *Module) Offer() string { return "Email me a sign-in link" }

// Mailing: single-use links with a code, working in the browser that
// asked unless other_browser says continue.
func (m *Module) Mailing() chain.Mailing { return m.mailing }

// Claimed is the account the page names.
func (m *Module) Claimed(form url.Values) string { return maillink.Claimed(form) }

// Prompt asks for the account to mail, unless someone is identified.
func (m *Module) Prompt(_ context.Context, a *chain.Attempt) (chain.Prompt, error) {
	p := chain.Prompt{Title: "Sign in with a link", Submit: "Mail me a link", Step: chain.StepSend, Fields: maillink.AskFields(a),
		Intro: "Enter your username or email address. If an account has it, we mail it a link to sign in, and a code for another device."}
	if a.Subject != "" {
		p.Intro = "We mail you a link to continue, and a code for another device."
	}
	return p, nil
}

// Send mails the link and code to the account the form names (or the
// identified user); "" when no account gets them.
func (m *Module) Send(ctx context.Context, a *chain.Attempt, form url.Values, l chain.Link) (string, error) {
	u, err := m.sender.Send(ctx, a, form, l, map[string]any{"code": l.Code})
	return u.Subject, err
}

// Complete passes: the link or its code came back.
func (m *Module) Complete(ctx context.Context, a *chain.Attempt, subject string) (chain.Identity, error) {
	if _, err := m.sender.Proved(ctx, a, subject); err != nil {
		return chain.Identity{}, err
	}
	return chain.Identity{Subject: subject, AMR: []string{chain.AMROTP}}, nil
}

var (
	_ chain.MailModule = (*Module)(nil)
	_ chain.Claimant   = (*Module)(nil)
	_ chain.Offerer    = (*Module)(nil)
)
