package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Request is what the provider (or any other caller) asks the chain for.
type Request struct {
	// ReturnTo is where the browser goes when the chain is done.
	ReturnTo string
	// AcrValues are the requested levels, most preferred first. They can
	// only add to what a login asks: a user's enrolled factors and
	// mandatory modules are asked whatever they say.
	AcrValues []string
	// Since, when set, is the earliest time a passed module counts
	// (max_age): older ones are asked again.
	Since time.Time
	// ForceLogin is a new authentication (prompt=login, max_age=0): the
	// SSO session's modules do not count, and the session's passed
	// modules are replaced by what this login passes.
	ForceLogin bool
	LoginHint  string
	UILocales  string
	// Client is the display name of the application asking, ClientID its
	// id (for the audit trail).
	Client   string
	ClientID string
}

// Outcome says what a session has achieved against a request.
type Outcome struct {
	// Done: nothing more to ask; the request is as satisfied as the chain
	// can make it.
	Done bool
	// Satisfied: a requested level (or, with none requested, the chain's
	// default path) was reached.
	Satisfied bool
	ACR       string
	Levels    []string
	AMR       []string
	AuthTime  time.Time
}

// Ender ends SSO sessions with everything hanging on them (package
// logout).
type Ender interface {
	// EndReplaced ends a session when another person signs in in its
	// browser.
	EndReplaced(ctx context.Context, sid string) error
	// LimitSessions ends a user's oldest sessions beyond the cap.
	LimitSessions(ctx context.Context, subject string) error
	// EndAll ends every session of a user (a module reset their
	// password).
	EndAll(ctx context.Context, subject string, reason logout.Reason) (int, error)
	// End ends one session (a remote provider logged the person out).
	End(ctx context.Context, sid string, reason logout.Reason) error
}

// Options configure an Engine.
type Options struct {
	Store    store.Store
	Sessions *session.Manager
	Users    *users.Directory
	// Logout ends the previous person's session when another signs in.
	Logout Ender
	// Regulate, when set, counts failures per account and address and
	// refuses attempts while they are delayed or banned.
	Regulate *regulate.Limiter
	// Audit takes the security events of sign-ins.
	Audit *audit.Log
	// Issuer is the provider's issuer URL: the engine's absolute URLs
	// (callbacks, mailed links, script sources) are on its origin. A
	// chain with a redirect, scripted or mail module needs it.
	Issuer string
	// LoginPath is the URL path the engine's handler is mounted at; it
	// also serves the paths below LoginPath + "/m/".
	LoginPath string
	// StaticPath is the URL prefix of web assets.
	StaticPath string
	// AttemptTTL bounds how long a login page stays usable. Default 30m.
	AttemptTTL time.Duration
	// Mailer sends the mail of mail modules.
	Mailer Mailer
	// HTTPClient is the modules' client for other sites; default one
	// with a 15 second timeout.
	HTTPClient *http.Client
	// Linker finds the local user of an identity at another issuer;
	// without one such identities are refused.
	Linker Linker
	// KeepSessionsOnPasswordChange: a module that sets a new password
	// does not end the user's other sessions.
	KeepSessionsOnPasswordChange bool
	Logger                       *slog.Logger
}

// Engine runs a chain.
type Engine struct {
	opt   Options
	roots []*node
	// list is every module in configuration order; nodes by name.
	list  []*node
	nodes map[string]*node
	ranks map[string]int
	// origin is the issuer's scheme://host[:port], "" without an issuer.
	origin string
	// mailTiming evens out the time of answers to mail requests.
	mailTiming evener
}

// New validates cfg and returns an engine.
func New(cfg Config, opt Options) (*Engine, error) {
	if opt.Sessions == nil || opt.Logout == nil || opt.Store == nil {
		return nil, errors.New("chain: Store, Sessions and Logout are required")
	}
	if opt.AttemptTTL <= 0 {
		opt.AttemptTTL = 30 * time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	e := &Engine{opt: opt}
	if opt.Issuer != "" {
		u, err := url.Parse(opt.Issuer)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("chain: issuer %q is no absolute URL", opt.Issuer)
		}
		e.origin = u.Scheme + "://" + u.Host
	}
	if err := e.build(cfg); err != nil {
		return nil, err
	}
	return e, nil
}

// KnownLevel reports whether some module grants level.
func (e *Engine) KnownLevel(level string) bool {
	_, ok := e.ranks[level]
	return ok
}

// Levels lists every level in rank order.
func (e *Engine) Levels() []string {
	out := make([]string, len(e.ranks))
	for l, r := range e.ranks {
		out[r] = l
	}
	return out
}

// fresh returns the passed records that count when only modules passed
// at or after since do (zero: all).
func fresh(passed []session.Passed, since time.Time) []session.Passed {
	if since.IsZero() {
		return passed
	}
	return slices.DeleteFunc(slices.Clone(passed), func(p session.Passed) bool { return p.At.Before(since) })
}

// Evaluate tells what passed records achieve against acrValues, counting
// only modules passed at or after since (zero: all).
func (e *Engine) Evaluate(ctx context.Context, subject string, passed []session.Passed, acrValues []string, since time.Time) (Outcome, error) {
	p := fresh(passed, since)
	next, err := e.next(ctx, subject, p, acrValues)
	if err != nil {
		return Outcome{}, err
	}
	o := e.outcome(p, acrValues)
	o.Done = len(next) == 0
	return o, nil
}

func (e *Engine) outcome(p []session.Passed, acrValues []string) Outcome {
	var o Outcome
	levels := map[string]bool{}
	var amr []string
	factors := map[string]bool{}
	var signedIn time.Time
	for _, x := range p {
		n, ok := e.nodes[x.Module]
		if !ok {
			continue // a module removed from the config no longer counts
		}
		for _, l := range x.Levels {
			levels[l] = true
		}
		for _, a := range x.AMR {
			if !slices.Contains(amr, a) {
				amr = append(amr, a)
			}
			factors[a] = true
		}
		if x.At.After(o.AuthTime) {
			o.AuthTime = x.At
		}
		if n.root && x.At.After(signedIn) {
			signedIn = x.At
		}
	}
	// auth_time is when the person authenticated: when a start module
	// (which identifies them) was passed. A later step-up does not make
	// an old sign-in fresh, so max_age still asks for the first factor.
	if !signedIn.IsZero() {
		o.AuthTime = signedIn
	}
	if len(factors) > 1 && !slices.Contains(amr, AMRMultiFactor) {
		amr = append(amr, AMRMultiFactor)
	}
	o.AMR = amr
	for l := range levels {
		o.Levels = append(o.Levels, l)
	}
	slices.SortFunc(o.Levels, func(a, b string) int { return e.ranks[a] - e.ranks[b] })
	for _, v := range acrValues {
		if levels[v] {
			o.ACR = v
			o.Satisfied = true
			break
		}
	}
	if o.ACR == "" && len(o.Levels) > 0 {
		o.ACR = o.Levels[len(o.Levels)-1]
		o.Satisfied = len(acrValues) == 0
	}
	return o
}

// next returns the modules to offer after passed, toward acrValues.
//
// Until someone is identified by a start module, start modules are
// offered (see startModules). After that, what a login asks is the user's
// baseline — every module after a passed one that applies to this user
// (a factor they enrolled, a mandatory module, any module that does not
// depend on the user), except those shown only when needed — plus,
// while a requested level is missing, the modules that lead to it.
// acr_values and the claims parameter can only add to the baseline,
// never take from it.
func (e *Engine) next(ctx context.Context, subject string, passed []session.Passed, acrValues []string) ([]*node, error) {
	done := map[string]bool{}
	signedIn := false
	for _, p := range passed {
		done[p.Module] = true
		if n, ok := e.nodes[p.Module]; ok && n.root {
			signedIn = true
		}
	}
	want := map[string]bool{}
	for _, v := range acrValues {
		want[v] = true
	}
	needMore := len(acrValues) > 0 && !e.outcome(passed, acrValues).Satisfied
	if !signedIn || subject == "" {
		return e.startModules(needMore, want), nil
	}
	u, err := e.opt.Users.Get(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("loading user for chain: %w", err)
	}
	// The frontier: modules after a passed module, not passed themselves.
	var frontier []*node
	var visit func(n *node)
	visit = func(n *node) {
		for _, c := range n.next {
			if done[c.Name] {
				visit(c)
				continue
			}
			if !slices.Contains(frontier, c) {
				frontier = append(frontier, c)
			}
		}
	}
	for _, r := range e.roots {
		if done[r.Name] {
			visit(r)
		}
	}
	var out []*node
	for _, n := range frontier {
		if n.Disabled {
			continue
		}
		if needMore && e.leadsTo(n, want) {
			out = append(out, n)
			continue
		}
		if n.ShowOnlyWhenNeeded {
			continue
		}
		if ap, ok := n.mod.(Applicable); ok {
			can, err := ap.Applicable(ctx, u)
			if err != nil {
				return nil, err
			}
			if !can {
				continue
			}
		}
		out = append(out, n)
	}
	if needMore {
		out = append(out, e.againFor(passed, want, out)...)
	}
	return out, nil
}

// startModules are the enabled start modules to offer: while a wanted
// level is missing, those that lead to it when some do; else all but
// those shown only when needed (unless nothing else is left).
func (e *Engine) startModules(needMore bool, want map[string]bool) []*node {
	var out, hidden, leading []*node
	for _, r := range e.roots {
		switch {
		case r.Disabled:
			continue
		case needMore && e.leadsTo(r, want):
			leading = append(leading, r)
		}
		if r.ShowOnlyWhenNeeded {
			hidden = append(hidden, r)
		} else {
			out = append(out, r)
		}
	}
	switch {
	case len(leading) > 0:
		return leading
	case len(out) == 0:
		return hidden
	}
	return out
}

// leadsTo reports whether n or a module after it grants a wanted level.
func (e *Engine) leadsTo(n *node, want map[string]bool) bool {
	for _, l := range n.Levels {
		if want[l] {
			return true
		}
	}
	for _, c := range n.next {
		if e.leadsTo(c, want) {
			return true
		}
	}
	return false
}
