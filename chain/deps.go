package chain

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Deps are what one module instance is given when it is built. Each
// instance gets its own: its store and logger carry its name.
// Regulation is not among them: the engine regulates every secret a
// module checks (Verify, Callback, Finish, Complete) before and after the
// call.
type Deps struct {
	// Name is the instance's name, as configured.
	Name string
	// Store keeps the instance's own records, under a prefix of its own
	// ("mod:<escaped name>:"): it sees no other key. Renaming an
	// instance therefore starts it with an empty store.
	Store *store.Prefixed
	// KindStore keeps the records every instance of the kind shares,
	// under the kind's prefix ("kind:<escaped kind>:"): what a user set
	// up through one instance (a passkey) works with the others (the
	// start page's passkey and the one asked after a password).
	KindStore *store.Prefixed
	// Users is the user directory.
	Users *users.Directory
	// Logger is named after the instance (attribute "module").
	Logger *slog.Logger
	// HTTP is the client for requests to other sites (a remote
	// provider's token endpoint), with a timeout.
	HTTP *http.Client
	// Issuer is the provider's issuer URL.
	Issuer string
	// CallbackURL is where a RedirectModule's browser comes back:
	// <issuer origin><login path>/m/<escaped name>/callback. Register it
	// at the remote side.
	CallbackURL string
	// Mailer sends mail; nil when none is configured (a MailModule is
	// then refused when the chain is built).
	Mailer Mailer
	// Now is the clock.
	Now func() time.Time
	// Audit takes the instance's security events (a factor enrolled).
	Audit *audit.Log
	// Sessions ends the SSO sessions in which this instance passed.
	Sessions PassedSessions
	// Chain is the whole chain's configuration, this instance's among
	// it (read only): for a kind whose behaviour depends on the others
	// (registration leaves new accounts inactive when the chain has an
	// activation module) or that checks where it stands (activation
	// refuses a level that a module before it grants).
	Chain []ModuleConfig
}

// Mail is one message to send: the template (text and HTML) by name and
// its data.
type Mail struct {
	To       string
	Template string
	Data     map[string]any
}

// Mailer sends mail (package mail queues it in the store and retries).
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// storePrefix is the prefix of an instance's store: the escaped name
// holds no ':', so no instance's prefix starts with another's.
func storePrefix(name string) string { return "mod:" + url.QueryEscape(name) + ":" }

// kindPrefix is the prefix of the records a kind's instances share.
func kindPrefix(kind string) string { return "kind:" + url.QueryEscape(kind) + ":" }

// moduleBase is the path under which the engine serves an instance's
// own endpoints.
func (e *Engine) moduleBase(name string) string {
	return e.opt.LoginPath + "/m/" + url.PathEscape(name)
}

func (e *Engine) deps(name string, cfg Config) Deps {
	d := Deps{
		Chain:  slices.Clone(cfg.Modules),
		Name:   name,
		Store:  store.WithPrefix(e.opt.Store, storePrefix(name)),
		Users:  e.opt.Users,
		Logger: e.opt.Logger.With("module", name),
		HTTP:   e.opt.HTTPClient,
		Issuer: e.opt.Issuer,
		Mailer: e.opt.Mailer,
		Now:    e.opt.Sessions.Now,
		Audit:  e.opt.Audit,
	}
	for _, mc := range cfg.Modules {
		if mc.Name == name {
			d.KindStore = store.WithPrefix(e.opt.Store, kindPrefix(mc.Kind))
		}
	}
	d.Sessions = passedSessions{e: e, module: name}
	if e.origin != "" {
		d.CallbackURL = e.origin + e.moduleBase(name) + "/callback"
	}
	return d
}
