package chain

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Request is what the provider (or any other caller) asks the chain for.
type Request struct {
	// ReturnTo is where the browser goes when the chain is done.
	ReturnTo string
	// AcrValues are the requested levels, most preferred first.
	AcrValues []string
	// MaxAge, when set, is how recently the levels must have been passed.
	MaxAge *time.Duration
	// ForceLogin re-authenticates even modules the session already passed
	// (prompt=login).
	ForceLogin bool
	LoginHint  string
	UILocales  string
	// Client is the display name of the application asking.
	Client string
}

// Attempt is one browser's walk through the chain, kept in the store.
type Attempt struct {
	ID      string           `json:"id"`
	Browser string           `json:"browser"`
	Subject string           `json:"sub,omitempty"`
	Passed  []session.Passed `json:"passed,omitempty"`
	Req     attemptRequest   `json:"req"`
	// Failures counts rejected submissions, to slow down guessing.
	Failures int       `json:"failures,omitempty"`
	Expires  time.Time `json:"expires"`
}

type attemptRequest struct {
	ReturnTo   string         `json:"return_to"`
	AcrValues  []string       `json:"acr_values,omitempty"`
	MaxAge     *time.Duration `json:"max_age,omitempty"`
	ForceLogin bool           `json:"force_login,omitempty"`
	LoginHint  string         `json:"login_hint,omitempty"`
	UILocales  string         `json:"ui_locales,omitempty"`
	Client     string         `json:"client,omitempty"`
}

// LoginHint is the login name the client suggested, if any.
func (a *Attempt) LoginHint() string { return a.Req.LoginHint }

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

// Options configure an Engine.
type Options struct {
	Store    store.Store
	Sessions *session.Manager
	Users    *users.Directory
	// LoginPath is the URL path the engine's handler is mounted at.
	LoginPath string
	// StaticPath is the URL prefix of web assets.
	StaticPath string
	// AttemptTTL bounds how long a login page stays usable. Default 30m.
	AttemptTTL time.Duration
	Logger     *slog.Logger
}

// Engine runs a chain.
type Engine struct {
	opt   Options
	start *node
	nodes map[string]*node
	ranks map[string]int
}

// New validates cfg and returns an engine.
func New(cfg Config, opt Options) (*Engine, error) {
	if opt.Sessions == nil {
		return nil, errors.New("chain: Sessions is required")
	}
	start, nodes, ranks, err := build(cfg, Deps{Users: opt.Users, Store: opt.Store, Now: opt.Sessions.Now})
	if err != nil {
		return nil, err
	}
	if opt.AttemptTTL <= 0 {
		opt.AttemptTTL = 30 * time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Engine{opt: opt, start: start, nodes: nodes, ranks: ranks}, nil
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

// fresh returns the passed records that count for req at time now.
func fresh(passed []session.Passed, maxAge *time.Duration, now time.Time) []session.Passed {
	if maxAge == nil {
		return passed
	}
	return slices.DeleteFunc(slices.Clone(passed), func(p session.Passed) bool { return now.Sub(p.At) > *maxAge })
}

// Evaluate tells what passed records achieve against acrValues and maxAge.
func (e *Engine) Evaluate(ctx context.Context, subject string, passed []session.Passed, acrValues []string, maxAge *time.Duration) (Outcome, error) {
	now := e.opt.Sessions.Now()
	p := fresh(passed, maxAge, now)
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
	for _, x := range p {
		if _, ok := e.nodes[x.Module]; !ok {
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
	}
	if len(factors) > 1 && !slices.Contains(amr, "mfa") {
		amr = append(amr, "mfa")
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
func (e *Engine) next(ctx context.Context, subject string, passed []session.Passed, acrValues []string) ([]*node, error) {
	done := map[string]bool{}
	for _, p := range passed {
		done[p.Module] = true
	}
	if !done[e.start.Name] || subject == "" {
		if e.start.Disabled {
			return nil, nil
		}
		return []*node{e.start}, nil
	}
	want := map[string]bool{}
	for _, v := range acrValues {
		want[v] = true
	}
	have := e.outcome(passed, acrValues)
	satisfied := len(acrValues) > 0 && have.Satisfied
	var u users.User
	if subject != "" {
		var err error
		u, err = e.opt.Users.Get(ctx, subject)
		if err != nil {
			return nil, fmt.Errorf("loading user for chain: %w", err)
		}
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
	visit(e.start)
	var out []*node
	for _, n := range frontier {
		if n.Disabled {
			continue
		}
		wanted := false
		for _, l := range n.Levels {
			wanted = wanted || want[l]
		}
		if n.ShowOnlyWhenNeeded && !wanted && !e.leadsTo(n, want) {
			continue
		}
		if len(acrValues) > 0 {
			if satisfied || !e.leadsTo(n, want) {
				continue
			}
		} else if ap, ok := n.mod.(Applicable); ok {
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
	return out, nil
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

const keyAttempt = "attempt:"

// Start begins a login for req and redirects the browser to its first page.
func (e *Engine) Start(w http.ResponseWriter, r *http.Request, req Request) error {
	browser := e.opt.Sessions.Browser(w, r)
	a := &Attempt{
		ID:      randomID(),
		Browser: browser,
		Req: attemptRequest{
			ReturnTo: req.ReturnTo, AcrValues: req.AcrValues, MaxAge: req.MaxAge, ForceLogin: req.ForceLogin,
			LoginHint: req.LoginHint, UILocales: req.UILocales, Client: req.Client,
		},
		Expires: e.opt.Sessions.Now().Add(e.opt.AttemptTTL),
	}
	if !req.ForceLogin {
		if s, err := e.opt.Sessions.Load(r); err == nil {
			a.Subject = s.Subject
			a.Passed = fresh(s.Passed, req.MaxAge, e.opt.Sessions.Now())
		} else if !errors.Is(err, session.ErrNoSession) {
			return err
		}
	}
	if err := e.addRemembered(r.Context(), r, a); err != nil {
		return err
	}
	if err := e.saveAttempt(r.Context(), a); err != nil {
		return err
	}
	http.Redirect(w, r, e.opt.LoginPath+"?attempt="+a.ID, http.StatusSeeOther)
	return nil
}

func (e *Engine) saveAttempt(ctx context.Context, a *Attempt) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ttl := a.Expires.Sub(e.opt.Sessions.Now())
	if ttl <= 0 {
		return errAttemptGone
	}
	if err := e.opt.Store.Set(ctx, keyAttempt+a.ID, b, ttl); err != nil {
		return fmt.Errorf("saving login attempt: %w", err)
	}
	return nil
}

var errAttemptGone = errors.New("login attempt expired or unknown")

// countFailure counts one rejected submission on the stored attempt in a
// single atomic update, so that wrong answers sent at once each count, and
// removes the attempt when it reaches maxFailures (locked reports that).
// An attempt that is gone meanwhile (locked or finished by another
// request) is errAttemptGone.
func (e *Engine) countFailure(ctx context.Context, a *Attempt) (locked bool, err error) {
	ttl := a.Expires.Sub(e.opt.Sessions.Now())
	if ttl <= 0 {
		return false, errAttemptGone
	}
	err = e.opt.Store.Update(ctx, keyAttempt+a.ID, ttl, func(old []byte) ([]byte, error) {
		locked = false // fn may run more than once
		if old == nil {
			return nil, errAttemptGone
		}
		var cur Attempt
		if err := json.Unmarshal(old, &cur); err != nil {
			return nil, fmt.Errorf("decoding login attempt: %w", err)
		}
		cur.Failures++
		if cur.Failures >= maxFailures {
			locked = true
			return nil, nil // deletes the attempt
		}
		return json.Marshal(&cur)
	})
	if err != nil {
		return false, err
	}
	if !locked {
		a.Failures++
	}
	return locked, nil
}

func (e *Engine) loadAttempt(ctx context.Context, id, browser string) (*Attempt, error) {
	if id == "" || len(id) > 64 {
		return nil, errAttemptGone
	}
	b, err := e.opt.Store.Get(ctx, keyAttempt+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errAttemptGone
	}
	if err != nil {
		return nil, fmt.Errorf("loading login attempt: %w", err)
	}
	var a Attempt
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decoding login attempt: %w", err)
	}
	// An attempt started in another browser is not this browser's to
	// finish (login CSRF and session fixation).
	if a.Browser != browser {
		return nil, errAttemptGone
	}
	return &a, nil
}

func randomID() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
