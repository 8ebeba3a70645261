package chaintest

import (
	"context"
	"errors"
	"net/url"
	"slices"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	chain.Register("test-signup", newSignup)
	chain.Register("test-reset", newReset)
}

// SignupSettings of a test-signup module.
type SignupSettings struct {
	// ActivationLevel: a user gets the group "active" once an attempt
	// reaches this level, whichever module granted it.
	ActivationLevel string `json:"activation_level,omitempty"`
}

// signup creates the user its form names, then activates them once the
// activation level is reached (a stand-in for registration plus
// activation).
type signup struct {
	d chain.Deps
	s SignupSettings
}

func newSignup(d chain.Deps, s SignupSettings) (chain.Module, error) { return &signup{d: d, s: s}, nil }

func (m *signup) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: "Create an account", Submit: "Create", Fields: []chain.Field{
		{Name: "username", Label: "Username", Type: "text"}, {Name: "email", Label: "Email", Type: "email"},
		{Name: "password", Label: "Password", Type: "password"}}}, nil
}

func (m *signup) Verify(ctx context.Context, _ *chain.Attempt, form url.Values) (chain.Identity, error) {
	u, err := m.d.Users.Create(ctx, users.User{Username: form.Get("username"), Email: form.Get("email")}, form.Get("password"))
	if errors.Is(err, users.ErrTaken) {
		return chain.Identity{}, chain.Reject("That name is taken.")
	} else if err != nil {
		return chain.Identity{}, chain.Reject(err.Error())
	}
	return chain.Identity{Subject: u.Subject, AMR: []string{chain.AMRPassword}}, nil
}

func (m *signup) AfterPass(ctx context.Context, a *chain.Attempt, u users.User, levels []string) error {
	if m.s.ActivationLevel == "" || !slices.Contains(levels, m.s.ActivationLevel) || slices.Contains(u.Groups, "active") {
		return nil
	}
	_, err := m.d.Users.Update(ctx, u.Subject, func(u *users.User) error {
		u.Groups = append(u.Groups, "active")
		return nil
	})
	return err
}

// reset sets the password of the user its form names (a stand-in for
// password forgotten, without the mail) and ends their sessions.
type reset struct{ d chain.Deps }

func newReset(d chain.Deps, _ struct{}) (chain.Module, error) { return &reset{d: d}, nil }

func (m *reset) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: "New password", Fields: []chain.Field{{Name: "username", Label: "Username", Type: "text"},
		{Name: "password", Label: "New password", Type: "password"}}}, nil
}

func (m *reset) Verify(ctx context.Context, _ *chain.Attempt, form url.Values) (chain.Identity, error) {
	u, err := m.d.Users.Lookup(ctx, form.Get("username"))
	if err != nil {
		return chain.Identity{}, chain.Reject("No such user.")
	}
	if _, err := m.d.Users.SetPassword(ctx, u.Subject, form.Get("password")); err != nil {
		return chain.Identity{}, chain.Reject(err.Error())
	}
	return chain.Identity{Subject: u.Subject, AMR: []string{chain.AMRPassword}, EndSessions: true}, nil
}

var (
	_ chain.FormModule = (*signup)(nil)
	_ chain.UserModule = (*signup)(nil)
	_ chain.FormModule = (*reset)(nil)
)
