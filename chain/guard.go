package chain

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// guard is one regulated check of a module's form: the keys it counts
// on and what the audit trail says about the person.
type guard struct {
	keys      []regulate.Key
	ip        string
	user      string // username, when an account is known
	subject   string
	source    string // the account's user source (LDAP), when it has one
	attempted string // the login name typed, when no account has it
}

// guardFor works out who a check tries: sub (the identified user),
// else the account (or unknown name) the module's form claims; and the
// client address.
func (e *Engine) guardFor(ctx context.Context, r *http.Request, sub string, n *node, form url.Values) (guard, error) {
	g := guard{ip: regulate.ClientIP(r)}
	g.keys = append(g.keys, regulate.IP(g.ip))
	if sub == "" && form != nil {
		if c, ok := n.mod.(Claimant); ok {
			if name := c.Claimed(form); name != "" {
				u, err := e.opt.Users.Lookup(ctx, name)
				switch {
				case err == nil:
					sub = u.Subject
				case errors.Is(err, users.ErrNotFound):
					g.attempted = name
					g.keys = append(g.keys, regulate.UnknownName(name))
				default:
					return g, err
				}
			}
		}
	}
	if sub != "" {
		g.subject = sub
		g.keys = append(g.keys, regulate.User(sub))
		if u, err := e.opt.Users.Get(ctx, sub); err == nil {
			g.user, g.source = u.Username, sourceOf(u)
		}
	}
	return g, nil
}

func (e *Engine) record(ctx context.Context, ev audit.Event, g guard, a *Attempt, n *node) {
	ev.User, ev.Subject, ev.Attempted, ev.IP = g.user, g.subject, g.attempted, g.ip
	if a != nil {
		ev.Client = a.Req.ClientID
	}
	if n != nil {
		ev.Module = n.Name
	}
	if g.source != "" {
		ev.Reason += "; user source: " + g.source // where the account and its password live
	}
	e.opt.Audit.Record(ctx, ev)
}

func sourceOf(u users.User) string {
	if u.Federation == nil {
		return ""
	}
	return u.Federation.Source
}

// blockedError is regulation's refusal: nothing was checked, so it
// tells nothing about the account.
type blockedError struct{ after time.Duration }

func (b *blockedError) Error() string { return "regulation: wait " + b.after.String() }

// admit asks regulation whether a check may run now, and counts it (as
// a failure until passed takes it back). When it may not, the refusal
// is audited and returned as a *blockedError.
func (e *Engine) admit(ctx context.Context, g guard, a *Attempt, n *node) error {
	if e.opt.Regulate == nil {
		return nil
	}
	blocked, err := e.opt.Regulate.Begin(ctx, g.keys...)
	return e.refused(ctx, blocked, err, g, a, n)
}

// admissible is admit without counting: for steps that check no secret
// (a script's first request, a callback whose start was counted).
func (e *Engine) admissible(ctx context.Context, g guard, a *Attempt, n *node) error {
	if e.opt.Regulate == nil {
		return nil
	}
	blocked, err := e.opt.Regulate.Check(ctx, g.keys...)
	return e.refused(ctx, blocked, err, g, a, n)
}

func (e *Engine) refused(ctx context.Context, blocked *regulate.Blocked, err error, g guard, a *Attempt, n *node) error {
	if err != nil || blocked == nil {
		return err
	}
	reason := "delay"
	if blocked.Banned {
		reason = "banned"
	}
	e.record(ctx, audit.Event{Event: audit.RateLimited, Reason: reason, Key: blocked.Key.String()}, g, a, n)
	return &blockedError{after: blocked.RetryAfter}
}

func tooManyAttempts(w http.ResponseWriter, static string, after time.Duration) {
	retryAfter(w, after)
	web.Error(w, static, http.StatusTooManyRequests, "Too many attempts",
		web.Sprintf("There were too many failed sign-in attempts. Wait %s, then try again.", web.Duration(after)))
}

func retryAfter(w http.ResponseWriter, after time.Duration) {
	secs := int((after + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}

// failed counts a rejected form on every key and records the failure
// and any ban it caused.
func (e *Engine) failed(ctx context.Context, g guard, a *Attempt, n *node, why string) {
	e.record(ctx, audit.Event{Event: audit.LoginFailed, Reason: why}, g, a, n)
	if e.opt.Regulate == nil {
		return
	}
	bans, err := e.opt.Regulate.Fail(ctx, g.keys...)
	if err != nil {
		e.opt.Logger.Error("gatehouse chain: counting a failed sign-in", "error", err)
	}
	for _, b := range bans {
		e.record(ctx, audit.Event{Event: audit.Banned, Key: b.Key.String(), Until: b.Until, Reason: "too many failures"}, g, a, n)
	}
}

// passed takes back the failure begin counted (a right answer, or a
// technical failure that is not the person's).
func (e *Engine) passed(ctx context.Context, g guard) {
	if e.opt.Regulate == nil {
		return
	}
	if err := e.opt.Regulate.Succeed(ctx, g.keys...); err != nil {
		e.opt.Logger.Error("gatehouse chain: regulation", "error", err)
	}
}
