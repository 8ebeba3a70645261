package chain

import (
	"context"
	"errors"
	"html/template"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Module is one way of authenticating (a kind: password, totp, …). The
// engine renders what Prompt returns in the common look and hands the
// submitted form to Verify. New kinds implement this and register a
// Factory; nothing in the engine, session or provider changes.
type Module interface {
	// Prompt describes the form for this step. a.Subject is set when an
	// earlier module identified the user.
	Prompt(ctx context.Context, a *Attempt) (Prompt, error)
	// Verify checks a submitted form. On success it returns the subject
	// of the authenticated user. A *Rejection means the person got it
	// wrong (shown to them); any other error is a technical failure.
	Verify(ctx context.Context, a *Attempt, form url.Values) (subject string, err error)
}

// Applicable is implemented by modules that not every user can do (a second
// factor the user never set up). A module that is not applicable is not
// offered as a next step.
type Applicable interface {
	Applicable(ctx context.Context, u users.User) (bool, error)
}

// Claimant is implemented by modules whose form names the account it
// tries before anyone is identified (a login name), so that failures are
// regulated per account from the first attempt.
type Claimant interface {
	Claimed(form url.Values) string
}

// Prompt is a module's form.
type Prompt struct {
	Title  string
	Intro  string
	Fields []Field
	// HTML is extra trusted markup from the module (a QR code, say).
	HTML   template.HTML
	Submit string
}

// Field is one input of a prompt.
type Field struct {
	Name, Label, Type, Value, Autocomplete, InputMode string
	Autofocus                                         bool
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

// Deps are what module factories may use.
type Deps struct {
	Users *users.Directory
	// Store keeps a module's own records (a TOTP secret, say).
	Store store.Store
	// Now is the clock.
	Now func() time.Time
	// Audit takes the module's security events (a factor enrolled).
	Audit *audit.Log
}

// Factory builds a module of one kind from its raw settings.
type Factory func(d Deps, settings map[string]string) (Module, error)

var kinds = map[string]kindInfo{}

type kindInfo struct {
	factory Factory
	amr     []string
}

// RegisterKind makes a module kind available to chain configs. amr are its
// RFC 8176 method reference values (e.g. "pwd", "otp").
func RegisterKind(kind string, amr []string, f Factory) {
	if _, dup := kinds[kind]; dup {
		panic("chain: module kind registered twice: " + kind)
	}
	kinds[kind] = kindInfo{factory: f, amr: amr}
}

// Kinds lists the registered kinds.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	return out
}
