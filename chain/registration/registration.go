// Package registration is the chain module for signing up: a form
// (username, email address, name, a password typed twice, under the
// password policy) that creates the account and passes as it, so the
// chain goes on — "sign up, then signed in" from an application's
// authorization request. When the chain has an activation module, the
// new account is inactive (users.User.Inactive) until that module
// activates it, and no session is made for it before.
//
// Sign-up never tells whether an address has an account when accounts
// start inactive: an inactive account does not claim its address (see
// package users), so a sign-up with an address that belongs to another
// account goes on exactly as any other, and the activation module then
// mails that address's owner a note instead of a link. Without an
// activation module nothing proves whose an address is, and sign-up
// must refuse an address in use (and so says it is).
//
// Sign-ups are counted per client address and in all, per hour, in the
// instance's store, besides the regulation of every refused form.
package registration

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/chain/activation"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Kind is the kind's name in a chain configuration.
const Kind = "registration"

func init() {
	chain.Register(Kind, New)
}

// Settings of a registration module.
type Settings struct {
	// Open: anyone may sign up, with any address (the default). With
	// email_domains only those domains may: leave open out, or set it
	// to false.
	Open *bool `json:"open,omitempty"`
	// EmailDomains limits sign-up to addresses at these domains
	// ("acme.example"; "*.acme.example" for all its subdomains).
	EmailDomains []string `json:"email_domains,omitempty"`
	// Welcome mails registration_welcome to each new account. Only for
	// accounts active at once: with an activation module in the chain,
	// set welcome there (it sends the message when it activates).
	Welcome bool `json:"welcome,omitempty"`
	// PerAddress bounds the sign-ups from one client address (IPv6: its
	// /64) in an hour. Default 5.
	PerAddress int `json:"per_address,omitempty"`
	// PerHour bounds the sign-ups from all addresses together in an
	// hour. Default 100.
	PerHour int `json:"per_hour,omitempty"`
}

const (
	defaultPerAddress = 5
	defaultPerHour    = 100
	maxName           = 128
	maxPassword       = 1024
	// keySignups + hour + ":" + what: sign-ups counted in that hour.
	keySignups = "signups:"
)

// Validate checks the settings together.
func (s *Settings) Validate() error {
	if _, err := parseDomains(s.EmailDomains); err != nil {
		return err
	}
	switch {
	case s.Open != nil && *s.Open && len(s.EmailDomains) > 0:
		return errors.New("open true lets anyone sign up and email_domains only those domains: leave out one of the two")
	case s.Open != nil && !*s.Open && len(s.EmailDomains) == 0:
		return errors.New("open false without email_domains lets nobody sign up: list the domains that may, or disable the module")
	case s.PerAddress < 0 || s.PerHour < 0:
		return errors.New("per_address and per_hour are numbers of sign-ups an hour, not below zero")
	}
	return nil
}

// Module is a registration module.
type Module struct {
	d       chain.Deps
	s       Settings
	domains domains
	// inactive: the chain has an activation module, so new accounts
	// start inactive.
	inactive bool
}

// New builds the module and checks where it stands in the chain.
func New(d chain.Deps, s Settings) (chain.Module, error) {
	if d.Users == nil || d.Store == nil {
		return nil, errors.New("the registration module needs the user directory and its store")
	}
	if s.Welcome && d.Mailer == nil {
		return nil, errors.New("welcome needs mail to be configured")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	doms, err := parseDomains(s.EmailDomains)
	if err != nil {
		return nil, err
	}
	if s.PerAddress == 0 {
		s.PerAddress = defaultPerAddress
	}
	if s.PerHour == 0 {
		s.PerHour = defaultPerHour
	}
	m := &Module{d: d, s: s, domains: doms}
	return m, m.checkPlace()
}

// checkPlace makes it a start module and finds whether accounts start
// inactive: they do when an enabled activation module is in the chain,
// which must then come after this one.
func (m *Module) checkPlace() error {
	byName := map[string]chain.ModuleConfig{}
	var activators []string
	for _, mc := range m.d.Chain {
		byName[mc.Name] = mc
		if mc.Kind == activation.Kind && !mc.Disabled {
			activators = append(activators, mc.Name)
		}
	}
	own, ok := byName[m.d.Name]
	if !ok {
		return nil // built alone (a test of the kind)
	}
	if len(own.After) > 0 {
		return fmt.Errorf("a registration module makes a new account, so it is a start module: remove `after %s`", strings.Join(own.After, " "))
	}
	if len(activators) == 0 {
		return nil
	}
	m.inactive = true
	if m.s.Welcome {
		return fmt.Errorf("welcome: new accounts start inactive here (module %q activates them); set welcome on %q, which sends it when it activates them", activators[0], activators[0])
	}
	comesAfter := func(name string) bool { return slices.Contains(chain.Before(m.d.Chain, name), m.d.Name) }
	if !slices.ContainsFunc(activators, comesAfter) {
		return fmt.Errorf("new accounts start inactive (module %q activates them), but no activation module comes after %q: add `after %s` to %q", activators[0], m.d.Name, m.d.Name, activators[0])
	}
	return nil
}

// Offer labels the link to this module under the sign-in form.
func (m *Module) Offer() string { return "Create an account" }

// Prompt is the sign-up form.
func (m *Module) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	intro := "Choose a username and a long password that is hard to guess."
	if m.domains.any() {
		intro = "Sign-up is open to addresses at " + m.domains.String() + ". " + intro
	}
	if m.inactive {
		intro += " A link to activate the account is then sent to your address."
	}
	return chain.Prompt{Title: "Create an account", Intro: intro, Submit: "Create account", Fields: []chain.Field{
		{Name: "username", Label: "Username", Type: "text", Autocomplete: "username", Autofocus: true},
		{Name: "email", Label: "Email", Type: "email", Autocomplete: "email"},
		{Name: "name", Label: "Full name (optional)", Type: "text", Autocomplete: "name"},
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "new-password"},
		{Name: "password_confirm", Label: "Password again", Type: "password", Autocomplete: "new-password"},
	}}, nil
}

// form is a sign-up as posted.
type form struct{ username, email, name, password string }

// read checks a posted sign-up; its refusals say what to correct.
func read(v url.Values) (form, error) {
	f := form{username: strings.TrimSpace(v.Get("username")), email: strings.TrimSpace(v.Get("email")),
		name: strings.TrimSpace(v.Get("name")), password: v.Get("password")}
	switch {
	case f.username == "" || f.email == "" || f.password == "":
		return f, chain.Reject("Fill in a username, your email address and a password.")
	case strings.Contains(f.username, "@"):
		return f, chain.Reject("A username cannot contain @ (your email address goes in its own field).")
	case users.ValidateUsername(f.username) != nil:
		return f, chain.Reject("A username has 1 to 64 letters, digits and . _ - + only.")
	case len(f.email) > 254 || !validAddress(f.email):
		return f, chain.Reject("That is not an email address (like alice@example.com).")
	case utf8.RuneCountInString(f.name) > maxName || !plainText(f.name):
		return f, chain.Reject("The name is too long, or has characters that cannot be shown.")
	case len(f.password) > maxPassword:
		return f, chain.Reject("The password is too long.")
	case v.Get("password_confirm") != f.password:
		return f, chain.Reject("The two passwords are not the same.")
	}
	return f, nil
}

func validAddress(s string) bool {
	_, err := mail.ParseAddress(s)
	return err == nil
}

// plainText: valid UTF-8 without control characters or the bidi
// controls that make text read otherwise than it is (a name goes into
// mail and pages).
func plainText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u061c' || r == '\u200e' || r == '\u200f' ||
			r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
	})
}

// Verify creates the account the form describes and passes as it.
func (m *Module) Verify(ctx context.Context, a *chain.Attempt, v url.Values) (chain.Identity, error) {
	if a.Subject != "" {
		return chain.Identity{}, chain.Reject("You are signed in already: sign out to create another account.")
	}
	f, err := read(v)
	if err != nil {
		return chain.Identity{}, err
	}
	if m.domains.any() && !m.domains.allows(f.email) {
		return chain.Identity{}, chain.Reject("Sign-up is open to addresses at " + m.domains.String() + " only.")
	}
	u := users.User{Username: f.username, Email: f.email, Name: f.name, Inactive: m.inactive}
	if err := policy(m.d.Users.CheckPassword(f.password, u)); err != nil {
		return chain.Identity{}, err
	}
	if err := m.count(ctx); err != nil {
		return chain.Identity{}, err
	}
	u, err = m.d.Users.Create(ctx, u, f.password)
	if errors.Is(err, users.ErrTaken) {
		return chain.Identity{}, m.taken(ctx, f)
	} else if err != nil {
		return chain.Identity{}, policy(err)
	}
	reason := "active"
	if u.Inactive {
		reason = "inactive until activated"
	}
	m.record(ctx, audit.Event{Event: audit.AccountCreated, Reason: reason}, u, a)
	if m.s.Welcome && !u.Inactive {
		activation.Welcome(ctx, m.d, u, a)
	}
	return chain.Identity{Subject: u.Subject, AMR: []string{chain.AMRPassword}}, nil
}

// policy turns the password policy's refusal into one for the person.
func policy(err error) error {
	var pe *users.PolicyError
	if errors.As(err, &pe) {
		return chain.Reject(pe.Message)
	}
	return err
}

// taken says what was taken. With inactive accounts only the username
// can be (their address is not claimed). Without, the address may be:
// nothing proves whose it is, so the only way to keep it unique is to
// say so.
func (m *Module) taken(ctx context.Context, f form) error {
	if !m.inactive {
		_, err := m.d.Users.Lookup(ctx, f.username)
		if errors.Is(err, users.ErrNotFound) {
			return chain.Reject(`An account with this email address exists already. Sign in with it, or use "Forgot password?".`)
		} else if err != nil {
			return err
		}
	}
	return chain.Reject("The username " + f.username + " is taken. Choose another.")
}

// count counts a sign-up against this client address and against all,
// in the current hour, refusing it past either limit. A sign-up whose
// account could not be made counts too: the limits bound what anyone can
// make the store keep.
func (m *Module) count(ctx context.Context) error {
	hour := strconv.FormatInt(m.d.Now().Unix()/3600, 10)
	type limit struct {
		key string
		max int
	}
	limits := []limit{{keySignups + hour + ":all", m.s.PerHour}}
	if ip := regulate.IPFromContext(ctx); ip != "" {
		limits = append([]limit{{keySignups + hour + ":" + regulate.IP(ip).Value, m.s.PerAddress}}, limits...)
	}
	errFull := chain.Reject("Too many accounts were created from here in the last hour. Try again later.")
	for _, l := range limits {
		err := m.d.Store.Update(ctx, l.key, 2*time.Hour, func(old []byte) ([]byte, error) {
			n, _ := strconv.Atoi(string(old))
			if n >= l.max {
				return nil, errFull
			}
			return []byte(strconv.Itoa(n + 1)), nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Module) record(ctx context.Context, ev audit.Event, u users.User, a *chain.Attempt) {
	ev.User, ev.Subject, ev.Module, ev.Client = u.Username, u.Subject, m.d.Name, a.Req.ClientID
	m.d.Audit.Record(ctx, ev)
}

var (
	_ chain.FormModule = (*Module)(nil)
	_ chain.Offerer    = (*Module)(nil)
)
