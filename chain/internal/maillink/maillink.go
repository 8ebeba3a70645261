// Package maillink is what the kinds that mail a link to an account
// holder (password_reset, magic_link) share: asking for the account,
// finding whom to mail without telling anyone whether the account
// exists, mailing the link, and — when the link or its code comes back —
// marking the address the mail went to as verified.
//
// It imports chain, mail (address syntax), store and users.
package maillink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Field is the form field that names the account (a username or an
// email address) when nobody is identified yet.
const Field = "login"

// maxLogin bounds what the field may hold; longer is nobody.
const maxLogin = 320

// keySent + attempt id: where the attempt's last mail went.
const keySent = "sent:"

// Sender mails one kind's links.
type Sender struct {
	D chain.Deps
	// Template is the mail template (mail.PasswordReset, mail.MagicLink).
	Template string
}

// AskFields are the fields of the first page: the account to mail,
// unless an earlier module identified the person (then none).
func AskFields(a *chain.Attempt) []chain.Field {
	if a.Subject != "" {
		return nil
	}
	hint := a.LoginHint()
	return []chain.Field{{Name: Field, Label: "Username or email", Type: "text", Value: hint, Autocomplete: "username", Autofocus: true}}
}

// Claimed is the account the first page's form names, for regulation.
func Claimed(form url.Values) string {
	login := strings.TrimSpace(form.Get(Field))
	if len(login) > maxLogin {
		return ""
	}
	return login
}

type sent struct {
	Subject string `json:"sub"`
	To      string `json:"to"`
}

// Send mails link l, with extra template values, to the person step a is
// for: the identified user, else the account the form names. It returns
// that user, or the zero User when nobody gets a mail — no such account,
// a disabled one, one without a usable address — which the engine
// answers exactly as a mail sent. A *chain.Rejection is a form to
// correct.
func (s *Sender) Send(ctx context.Context, a *chain.Attempt, form url.Values, l chain.Link, extra map[string]any) (users.User, error) {
	u, err := s.recipient(ctx, a, form)
	if err != nil || u.Subject == "" {
		return users.User{}, err
	}
	now := s.D.Now()
	data := map[string]any{"link": l.URL, "expires": l.Expires.Sub(now).Round(time.Minute)}
	for k, v := range extra {
		data[k] = v
	}
	required := len(data)
	for k, v := range map[string]string{"username": u.Username, "name": u.Name, "client_name": a.Req.Client} {
		if v != "" {
			data[k] = v
		}
	}
	m := chain.Mail{To: u.Email, Template: s.Template, Data: data}
	if err := s.D.Mailer.Send(ctx, m); err != nil {
		if len(data) == required {
			return users.User{}, fmt.Errorf("mailing a link: %w", err)
		}
		// A name the mail refuses (a control character in it) must not
		// keep the person from their link: send it without the names.
		s.D.Logger.Warn("gatehouse: mailing a link without the names the message refused", "user", u.Username, "error", err)
		for _, k := range []string{"username", "name", "client_name"} {
			delete(m.Data, k)
		}
		if err := s.D.Mailer.Send(ctx, m); err != nil {
			return users.User{}, fmt.Errorf("mailing a link: %w", err)
		}
	}
	rec, _ := json.Marshal(sent{Subject: u.Subject, To: u.Email})
	if err := s.D.Store.Set(ctx, keySent+a.ID, rec, max(l.Expires.Sub(now), time.Second)); err != nil {
		return users.User{}, fmt.Errorf("noting where a link went: %w", err)
	}
	return u, nil
}

// recipient is whom step a mails: the zero User for nobody.
func (s *Sender) recipient(ctx context.Context, a *chain.Attempt, form url.Values) (users.User, error) {
	var u users.User
	var err error
	if a.Subject != "" {
		u, err = s.D.Users.Get(ctx, a.Subject)
	} else {
		login := strings.TrimSpace(form.Get(Field))
		if login == "" {
			return users.User{}, chain.Reject("Enter your username or email address.")
		}
		if Claimed(form) == "" {
			return users.User{}, nil
		}
		u, err = s.D.Users.Lookup(ctx, login)
	}
	if errors.Is(err, users.ErrNotFound) {
		return users.User{}, nil
	} else if err != nil {
		return users.User{}, err
	}
	if u.Disabled || u.Email == "" {
		return users.User{}, nil
	}
	if _, err := mail.ParseAddress(u.Email); err != nil {
		s.D.Logger.Warn("gatehouse: a user's address cannot take mail; no link sent", "user", u.Username, "error", err)
		return users.User{}, nil
	}
	return u, nil
}

// Proved is called when a link or code of attempt a came back for
// subject: the person read the mail, so the address it went to is
// verified, if it is still the user's. It returns the user as they are
// now.
func (s *Sender) Proved(ctx context.Context, a *chain.Attempt, subject string) (users.User, error) {
	var to sent
	b, err := s.D.Store.Take(ctx, keySent+a.ID)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &to); err != nil {
			return users.User{}, fmt.Errorf("decoding where a link went: %w", err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return users.User{}, err
	}
	u, err := s.D.Users.Get(ctx, subject)
	// An imported account's address is its directory's to vouch for.
	if err != nil || to.Subject != subject || u.EmailVerified || !strings.EqualFold(u.Email, to.To) || u.Federation != nil {
		return u, err
	}
	return s.D.Users.Update(ctx, subject, func(u *users.User) error {
		if strings.EqualFold(u.Email, to.To) {
			u.EmailVerified = true
		}
		return nil
	})
}
