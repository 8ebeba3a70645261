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
	attempted string // the login name typed, when no account has it
}

// guardFor works out who a form tries: the identified user, else the
// account (or unknown name) the module's form claims; and the client
// address.
func (e *Engine) guardFor(ctx context.Context, r *http.Request, a *Attempt, n *node, form url.Values) (guard, error) {
	g := guard{ip: regulate.ClientIP(r)}
	g.keys = append(g.keys, regulate.IP(g.ip))
	sub := a.Subject
	if sub == "" {
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
			g.user = u.Username
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
	e.opt.Audit.Record(ctx, ev)
}

// begin asks regulation whether this form may be checked now. When it
// may not, the person gets one answer, whatever the account: nothing
// was checked, so it tells nothing.
func (e *Engine) begin(w http.ResponseWriter, r *http.Request, g guard, a *Attempt, n *node) bool {
	if e.opt.Regulate == nil {
		return true
	}
	blocked, err := e.opt.Regulate.Begin(r.Context(), g.keys...)
	if err != nil {
		e.fail(w, err)
		return false
	}
	if blocked == nil {
		return true
	}
	reason := "delay"
	if blocked.Banned {
		reason = "banned"
	}
	e.record(r.Context(), audit.Event{Event: audit.RateLimited, Reason: reason, Key: blocked.Key.String()}, g, a, n)
	tooManyAttempts(w, e.opt.StaticPath, blocked.RetryAfter)
	return false
}

func tooManyAttempts(w http.ResponseWriter, static string, after time.Duration) {
	secs := int((after + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	web.Error(w, static, http.StatusTooManyRequests, "Too many attempts",
		"There were too many failed sign-in attempts. Wait "+regulate.Describe(after)+", then try again.")
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
