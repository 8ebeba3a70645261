// Package activation is the chain module that activates accounts
// awaiting it (users.User.Inactive: accounts made by sign-up while the
// chain has an activation module). It mails a single-use link to the
// account's address; the account is active once a sign-in reaches an
// activation level: this module's own pass (the link), or the level its
// activation_level setting names, whichever module grants it (a remote
// provider whose addresses are verified). That rule lives in AfterPass,
// which the engine calls after every pass of any module.
//
// After a module that identifies the user (password), it mails the
// account's address without asking; as a start module it asks for the
// username or address, and answers the same whether or not an account
// awaits activation there. The link also works in another browser, or
// after the sign-in that asked has ended (up to link_ttl, default 24
// hours): there it activates the account and says so (chain.Redeemer),
// and the browser that asked goes on without waiting.
//
// An inactive account gets no session (the engine refuses it), so this
// module is offered to every inactive account (Applicable) and must not
// be shown only when needed.
package activation

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Kind is the kind's name in a chain configuration.
const Kind = "activation"

func init() {
	chain.Register(Kind, New)
}

// Settings of an activation module.
type Settings struct {
	// LinkTTL is how long an activation link works (once): from a
	// minute to 7 days. Default 24h.
	LinkTTL chain.Duration `json:"link_ttl,omitempty"`
	// ActivationLevel, when set, also activates accounts: a sign-in that
	// reaches this level, whichever module grants it, activates the
	// account (a remote provider whose addresses are verified). No
	// module this one comes after may grant it (passing that module
	// would activate without proof). This module's own link always
	// activates.
	ActivationLevel string `json:"activation_level,omitempty"`
	// Welcome mails registration_welcome to an account when this module
	// activates it.
	Welcome bool `json:"welcome,omitempty"`
}

const (
	defaultTTL = 24 * time.Hour
	minTTL     = time.Minute
	maxTTL     = 7 * 24 * time.Hour
	// keyTold + subject: the owner of an address was told lately that
	// someone signed up with it (at most one note an hour).
	keyTold  = "told:"
	toldTTL  = time.Hour
	maxLogin = 254
)

// Validate checks the link's lifetime.
func (s *Settings) Validate() error {
	if d := time.Duration(s.LinkTTL); d != 0 && (d < minTTL || d > maxTTL) {
		return fmt.Errorf("link_ttl must be between 1m and 7d, not %s", d)
	}
	return nil
}

// Module is an activation module.
type Module struct {
	d       chain.Deps
	ttl     time.Duration
	level   string
	welcome bool
}

// New builds the module and checks where it stands in the chain.
func New(d chain.Deps, s Settings) (chain.Module, error) {
	if d.Users == nil || d.Store == nil || d.Mailer == nil {
		return nil, errors.New("the activation module needs the user directory, its store and the mailer")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	m := &Module{d: d, ttl: time.Duration(s.LinkTTL), level: s.ActivationLevel, welcome: s.Welcome}
	if m.ttl == 0 {
		m.ttl = defaultTTL
	}
	if err := m.checkPlace(); err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(d.Chain, func(mc chain.ModuleConfig) bool { return mc.Name == d.Name }); i >= 0 && len(d.Chain[i].After) == 0 {
		return &starter{m}, nil
	}
	return m, nil
}

// starter is the module as a start module: a way in beside signing in
// (for whoever lost the first activation mail), offered as a link under
// the sign-in form. After another module it is a step of the sign-in,
// not an offer.
type starter struct{ *Module }

// Offer labels the link under the sign-in form.
func (s *starter) Offer() string { return "Activate your account" }

// checkPlace refuses a chain in which some inactive accounts would never
// be offered this module, or in which a module before it would activate
// them without proof.
func (m *Module) checkPlace() error {
	byName := map[string]chain.ModuleConfig{}
	for _, mc := range m.d.Chain {
		byName[mc.Name] = mc
	}
	own, ok := byName[m.d.Name]
	if !ok {
		return nil // built alone (a test of the kind)
	}
	if own.ShowOnlyWhenNeeded {
		return errors.New("an activation module cannot be show_only_when_needed: accounts awaiting activation must be offered it")
	}
	if m.level == "" {
		return nil
	}
	granted := slices.ContainsFunc(m.d.Chain, func(mc chain.ModuleConfig) bool { return slices.Contains(mc.Levels, m.level) })
	if !granted {
		return fmt.Errorf("activation_level %q is granted by no module of the chain", m.level)
	}
	for _, p := range chain.Before(m.d.Chain, m.d.Name) {
		if slices.Contains(byName[p].Levels, m.level) {
			return fmt.Errorf("activation_level %q is granted by module %q, which comes before %q: passing it would activate accounts whose address nobody proved", m.level, p, m.d.Name)
		}
	}
	// Wherever they stand, these kinds prove nothing about an address.
	for _, mc := range m.d.Chain {
		if slices.Contains(mc.Levels, m.level) && slices.Contains([]string{"password", "registration", "totp"}, mc.Kind) {
			return fmt.Errorf("activation_level %q is granted by module %q, a %s module, which proves nothing about an address: choose a level that only modules proving it grant", m.level, mc.Name, mc.Kind)
		}
	}
	return nil
}

// Prompt asks for the account (as a start module), or offers to mail the
// identified account's address.
func (m *Module) Prompt(ctx context.Context, a *chain.Attempt) (chain.Prompt, error) {
	p := chain.Prompt{Title: "Activate your account", Step: chain.StepSend}
	if a.Subject == "" {
		p.Intro = "Enter your username or email address. If the account is waiting to be activated, a link to activate it is sent to its address."
		p.Fields = []chain.Field{{Name: "login", Label: "Username or email", Type: "text", Value: a.LoginHint(), Autocomplete: "username", Autofocus: true}}
		p.Submit = "Send the activation link"
		return p, nil
	}
	u, err := m.d.Users.Get(ctx, a.Subject)
	if err != nil {
		return p, err
	}
	switch {
	case u.Email == "":
		p.Intro = "Your account has no email address to send a link to. Ask the administrator to activate it."
		p.NoSubmit = true
	case u.Inactive:
		p.Intro = web.Sprintf("Your account is not active yet. A link to activate it is sent to %s; open it to continue.", masked(u.Email))
		p.Submit = "Send the link"
	default: // an active account asked for this module's level
		p.Title = "Confirm your email address"
		p.Intro = web.Sprintf("A link is sent to %s; open it to continue.", masked(u.Email))
		p.Submit = "Send the link"
	}
	return p, nil
}

// masked shows an address's first character and domain: enough for its
// owner to recognise it.
func masked(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 1 {
		return "your address"
	}
	_, size := utf8.DecodeRuneInString(addr)
	return addr[:size] + "•••" + addr[at:]
}

// Applicable: accounts awaiting activation.
func (m *Module) Applicable(_ context.Context, u users.User) (bool, error) { return u.Inactive, nil }

// Claimed is the account a start module's form names: mails are
// regulated per account from the first.
func (m *Module) Claimed(form url.Values) string {
	if login := strings.TrimSpace(form.Get("login")); len(login) <= maxLogin {
		return login
	}
	return ""
}

// Mailing: links live link_ttl, whatever the sign-in that asked does; in
// another browser they are redeemed (see Redeem).
func (m *Module) Mailing() chain.Mailing {
	return chain.Mailing{TTL: m.ttl, Elsewhere: chain.SameBrowserOnly}
}

// Send mails the activation link to the account's address. As a start
// module it sends nothing (and returns "") when the form names no
// account, an active one, or one without an address: the person is told
// the same. After a module that identified the account, it mails it
// (an active account only meets this module when a client asked for its
// level). When another, active account has the address (someone signed
// up with an address that is not theirs), its owner is told instead, at
// most once an hour, and no link goes out.
func (m *Module) Send(ctx context.Context, a *chain.Attempt, form url.Values, l chain.Link) (string, error) {
	var u users.User
	var err error
	if a.Subject != "" {
		u, err = m.d.Users.Get(ctx, a.Subject)
	} else {
		login := m.Claimed(form)
		if login == "" {
			return "", chain.Reject("Enter your username or email address.")
		}
		u, err = m.d.Users.Lookup(ctx, login)
		if errors.Is(err, users.ErrNotFound) {
			return "", nil
		}
	}
	if err != nil {
		return "", err
	}
	if u.Email == "" || !u.Inactive && a.Subject == "" {
		return "", nil
	}
	owner, err := m.d.Users.Lookup(ctx, u.Email)
	switch {
	case err == nil && owner.Subject != u.Subject && !owner.Inactive:
		return "", m.tellOwner(ctx, a, u, owner)
	case err != nil && !errors.Is(err, users.ErrNotFound):
		return "", err
	}
	data := mailData(u, a)
	data["link"], data["expires"] = l.URL, m.ttl
	if err := m.d.Mailer.Send(ctx, chain.Mail{To: u.Email, Template: mail.Activation, Data: data}); err != nil {
		return "", fmt.Errorf("mailing the activation link: %w", err)
	}
	return u.Subject, nil
}

// tellOwner tells the owner of an address that someone signed up with
// it (account u), at most once an hour.
func (m *Module) tellOwner(ctx context.Context, a *chain.Attempt, u, owner users.User) error {
	ev := audit.Event{Event: audit.ActivationRefused, Reason: "the address belongs to " + owner.Username + "; its owner was told"}
	err := m.d.Store.Create(ctx, keyTold+owner.Subject, []byte{1}, toldTTL)
	switch {
	case errors.Is(err, store.ErrExists):
		ev.Reason = "the address belongs to " + owner.Username + "; its owner was told within the hour"
	case err != nil:
		return err
	default:
		if err := m.d.Mailer.Send(ctx, chain.Mail{To: owner.Email, Template: mail.AccountExists, Data: mailData(owner, nil)}); err != nil {
			return fmt.Errorf("telling an address's owner: %w", err)
		}
	}
	m.record(ctx, ev, u, a)
	return nil
}

// Complete passes once the link (or its code) was used in the sign-in
// that asked: the address is proven.
func (m *Module) Complete(ctx context.Context, _ *chain.Attempt, subject string) (chain.Identity, error) {
	if _, err := m.d.Users.Get(ctx, subject); errors.Is(err, users.ErrNotFound) {
		return chain.Identity{}, chain.Reject("This account no longer exists.")
	} else if err != nil {
		return chain.Identity{}, err
	}
	return chain.Identity{Subject: subject, AMR: []string{chain.AMROTP}}, nil
}

// AfterPass activates an account awaiting it once the sign-in reached an
// activation level: this module passed, or activation_level is among
// the levels reached. An account whose address was verified meanwhile —
// by another module's mailed link (password forgotten, a sign-in link),
// or by an administrator — is activated too: that is what activation
// proves.
func (m *Module) AfterPass(ctx context.Context, a *chain.Attempt, u users.User, levels []string) error {
	if !u.Inactive {
		return nil
	}
	how := ""
	switch {
	case slices.ContainsFunc(a.Passed, func(p session.Passed) bool { return p.Module == m.d.Name }):
		how = "activation link"
	case m.level != "" && slices.Contains(levels, m.level):
		how = "level " + m.level + " reached"
	case u.EmailVerified:
		how = "address verified"
	default:
		return nil
	}
	_, err := m.activate(ctx, u.Subject, how, a)
	return err
}

// Outcomes of activate.
const (
	activated = iota
	wasActive
	addressTaken
)

// activate makes account sub active and its address verified and
// claimed. When another account claimed the address meanwhile, the
// account stays inactive (the engine will not sign it in).
func (m *Module) activate(ctx context.Context, sub, how string, a *chain.Attempt) (int, error) {
	outcome := activated
	u, err := m.d.Users.Update(ctx, sub, func(u *users.User) error {
		outcome = activated
		if !u.Inactive {
			outcome = wasActive
			return nil
		}
		u.Inactive, u.EmailVerified = false, true
		return nil
	})
	if errors.Is(err, users.ErrTaken) {
		u, _ = m.d.Users.Get(ctx, sub)
		m.record(ctx, audit.Event{Event: audit.ActivationRefused, Reason: "another account claimed the address meanwhile"}, u, a)
		return addressTaken, nil
	} else if err != nil {
		return 0, fmt.Errorf("activating an account: %w", err)
	}
	if outcome == activated {
		m.record(ctx, audit.Event{Event: audit.AccountActivated, Reason: how}, u, a)
		if m.welcome {
			Welcome(ctx, m.d, u, a)
		}
	}
	return outcome, nil
}

// mailData are the values of a message about account u.
func mailData(u users.User, a *chain.Attempt) map[string]any {
	data := map[string]any{"username": u.Username}
	if u.Name != "" {
		data["name"] = u.Name
	}
	if a != nil && a.Req.Client != "" {
		data["client_name"] = a.Req.Client
	}
	return data
}

// Welcome mails registration_welcome to account u (for registration
// too, when it makes accounts active at once). A failure is logged, not
// shown: the account is there.
func Welcome(ctx context.Context, d chain.Deps, u users.User, a *chain.Attempt) {
	if err := d.Mailer.Send(ctx, chain.Mail{To: u.Email, Template: mail.RegistrationWelcome, Data: mailData(u, a)}); err != nil && d.Logger != nil {
		d.Logger.Error("gatehouse: welcome message not sent", "module", d.Name, "user", u.Username, "error", err)
	}
}

// Redeem activates the account of a link used apart from its sign-in
// (in another browser, or after the sign-in ended).
func (m *Module) Redeem(ctx context.Context, subject string) (string, string, error) {
	if subject == "" {
		return "", "", errors.New("activation: a link for no account")
	}
	outcome, err := m.activate(ctx, subject, "activation link, apart from its sign-in", nil)
	if errors.Is(err, users.ErrNotFound) {
		return "This account no longer exists", "The account this link was for has been removed.", nil
	}
	switch {
	case err != nil:
		return "", "", err
	case outcome == wasActive:
		return "Your account is already active", "You can sign in.", nil
	case outcome == addressTaken:
		return "This account cannot be activated", "Its email address now belongs to another account. Sign in with that account, or sign up again with another address.", nil
	}
	return "Your account is active", "If the page where you signed up is still open, go back to it: it goes on from there. Otherwise, sign in again.", nil
}

// Actions: "activate", for an account whose owner cannot get the mail.
func (m *Module) Actions() []chain.Action {
	return []chain.Action{{Name: "activate", Description: "Activate the account by hand (its address is taken as proven)"}}
}

// Act runs an admin action.
func (m *Module) Act(ctx context.Context, action string, u users.User) (string, error) {
	if action != "activate" {
		return "", fmt.Errorf("activation has no action %q", action)
	}
	switch outcome, err := m.activate(ctx, u.Subject, "by an administrator", nil); {
	case err != nil:
		return "", err
	case outcome == wasActive:
		return u.Username + " was active already", nil
	case outcome == addressTaken:
		return "", fmt.Errorf("%s cannot be activated: another account has the address %s", u.Username, u.Email)
	}
	return u.Username + " activated", nil
}

func (m *Module) record(ctx context.Context, ev audit.Event, u users.User, a *chain.Attempt) {
	ev.User, ev.Subject, ev.Module = u.Username, u.Subject, m.d.Name
	if a != nil {
		ev.Client = a.Req.ClientID
	}
	m.d.Audit.Record(ctx, ev)
}

var (
	_ chain.MailModule   = (*Module)(nil)
	_ chain.Redeemer     = (*Module)(nil)
	_ chain.UserModule   = (*Module)(nil)
	_ chain.Claimant     = (*Module)(nil)
	_ chain.Applicable   = (*Module)(nil)
	_ chain.AdminActions = (*Module)(nil)
	_ chain.Offerer      = (*starter)(nil)
)
