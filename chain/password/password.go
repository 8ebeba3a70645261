// Package password is the chain module that checks a username (or email)
// and password against the user directory.
package password

import (
	"context"
	"errors"
	"net/url"
	"unicode/utf8"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	chain.Register("password", New)
}

// Settings: the password module has none (the password policy and
// hashing are the user directory's).
type Settings struct{}

// Module is the password module.
type Module struct {
	users *users.Directory
}

// New builds the module.
func New(d chain.Deps, _ Settings) (chain.Module, error) {
	if d.Users == nil {
		return nil, errors.New("the password module needs the user directory")
	}
	return &Module{users: d.Users}, nil
}

// Prompt asks for login name and password.
func (m *Module) Prompt(ctx context.Context, a *chain.Attempt) (chain.Prompt, error) {
	login := a.LoginHint()
	if a.Subject != "" {
		if u, err := m.users.Get(ctx, a.Subject); err == nil {
			login = u.Username
		}
	}
	return chain.Prompt{
		Title: "Sign in",
		Fields: []chain.Field{
			{Name: "username", Label: "Username or email", Type: "text", Value: login, Autocomplete: "username", Autofocus: login == ""},
			{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Autofocus: login != ""},
		},
		Submit: "Sign in",
	}, nil
}

const maxField = 1024

// Claimed is the login name the form tries (regulation counts failures
// on that account, or on the name when no account has it).
func (m *Module) Claimed(form url.Values) string {
	login := form.Get("username")
	if len(login) > maxField {
		return ""
	}
	return login
}

// Verify checks the credentials. Unknown user, wrong password and disabled
// account get the same message after the same work.
func (m *Module) Verify(ctx context.Context, a *chain.Attempt, form url.Values) (chain.Identity, error) {
	login, pw := form.Get("username"), form.Get("password")
	if login == "" || pw == "" {
		return chain.Identity{}, chain.Reject("Enter your username and password.")
	}
	if len(login) > maxField || len(pw) > maxField || !utf8.ValidString(login) {
		return chain.Identity{}, chain.Reject("Username or password is too long.")
	}
	u, err := m.users.Authenticate(ctx, login, pw)
	if errors.Is(err, users.ErrInvalidCredentials) {
		return chain.Identity{}, chain.Reject("Wrong username or password.")
	}
	if errors.Is(err, users.ErrSourceConflict) {
		// Said only after the password was right: it tells nothing to
		// whoever does not know it.
		return chain.Identity{}, chain.Reject("Your directory account has the name or address of another account here, so it cannot sign in. Ask an administrator.")
	}
	if err != nil {
		return chain.Identity{}, err
	}
	return chain.Identity{Subject: u.Subject, AMR: []string{chain.AMRPassword}}, nil
}

var (
	_ chain.FormModule = (*Module)(nil)
	_ chain.Claimant   = (*Module)(nil)
)
