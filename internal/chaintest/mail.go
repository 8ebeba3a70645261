package chaintest

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Outbox is a chain.Mailer that keeps what it is given.
type Outbox struct {
	mu   sync.Mutex
	sent []chain.Mail
}

// Send keeps m.
func (o *Outbox) Send(_ context.Context, m chain.Mail) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, m)
	return nil
}

// Sent returns the mails sent so far.
func (o *Outbox) Sent() []chain.Mail {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]chain.Mail(nil), o.sent...)
}

// Last is the last mail sent; ok is false when there is none.
func (o *Outbox) Last() (m chain.Mail, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sent) == 0 {
		return m, false
	}
	return o.sent[len(o.sent)-1], true
}

func init() {
	chain.Register("test-mail", newMail)
}

// MailSettings of a test-mail module.
type MailSettings struct {
	// Code: the mail carries a code to type in the browser that asked.
	Code bool `json:"code,omitempty"`
	// ContinueThere: a link opened in another browser signs in there.
	ContinueThere bool `json:"continue_there,omitempty"`
	// TTL of the links.
	TTL chain.Duration `json:"ttl,omitempty"`
}

type mailer struct {
	d chain.Deps
	s MailSettings
}

// newMail leaves checking for a mailer to the engine.
func newMail(d chain.Deps, s MailSettings) (chain.Module, error) { return &mailer{d: d, s: s}, nil }

// Prompt asks for an address, unless someone is identified.
func (m *mailer) Prompt(_ context.Context, a *chain.Attempt) (chain.Prompt, error) {
	p := chain.Prompt{Title: "Email me a link", Submit: "Send the link", Step: chain.StepSend}
	if a.Subject == "" {
		p.Fields = []chain.Field{{Name: "email", Label: "Email", Type: "email", Autocomplete: "email"}}
	}
	return p, nil
}

func (m *mailer) Mailing() chain.Mailing {
	el := chain.SameBrowserOnly
	if m.s.ContinueThere {
		el = chain.ContinueThere
	}
	return chain.Mailing{TTL: time.Duration(m.s.TTL), Code: m.s.Code, Elsewhere: el}
}

// Claimed is the address the form names.
func (m *mailer) Claimed(form url.Values) string { return form.Get("email") }

func (m *mailer) Send(ctx context.Context, a *chain.Attempt, form url.Values, l chain.Link) (string, error) {
	var u users.User
	var err error
	if a.Subject != "" {
		u, err = m.d.Users.Get(ctx, a.Subject)
	} else {
		if form.Get("email") == "" {
			return "", chain.Reject("Enter your email address.")
		}
		u, err = m.d.Users.Lookup(ctx, form.Get("email"))
		if errors.Is(err, users.ErrNotFound) {
			return "", nil // nothing sent; the engine answers the same
		}
	}
	if err != nil {
		return "", err
	}
	data := map[string]any{"url": l.URL, "expires": l.Expires}
	if m.s.Code {
		data["code"] = l.Code
	}
	return u.Subject, m.d.Mailer.Send(ctx, chain.Mail{To: u.Email, Template: "test-link", Data: data})
}

func (m *mailer) Complete(_ context.Context, _ *chain.Attempt, subject string) (chain.Identity, error) {
	return chain.Identity{Subject: subject, AMR: []string{chain.AMROTP}}, nil
}

var (
	_ chain.MailModule = (*mailer)(nil)
	_ chain.Claimant   = (*mailer)(nil)
)
