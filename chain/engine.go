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
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
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

// Attempt is one browser's walk through the chain. Until a form is
// posted it is not stored at all: it travels sealed in the login page's
// URL (so an unauthenticated request writes nothing), and what the
// browser already has (its SSO session, remembered devices) is read from
// its cookies. From the first posted form on it is kept in the store.
type Attempt struct {
	ID      string           `json:"id"`
	Browser string           `json:"browser"`
	Subject string           `json:"sub,omitempty"`
	Passed  []session.Passed `json:"passed,omitempty"`
	Req     attemptRequest   `json:"req"`
	// Token is the sealed form of the attempt in the page's URL.
	Token string `json:"token"`
	// Failures counts rejected submissions; at maxFailures the attempt
	// is Locked until it expires.
	Failures int  `json:"failures,omitempty"`
	Locked   bool `json:"locked,omitempty"`
	// Fresh: the start module was passed in this attempt, so it is a new
	// authentication and replaces what the session had passed.
	Fresh bool `json:"fresh,omitempty"`
	// Finished: the attempt made its session; its token is spent.
	Finished bool `json:"finished,omitempty"`
	// SessionID and FromSession: the SSO session the attempt started
	// from and the modules it took from it; if that session ends while
	// the attempt goes on, those passes no longer count.
	SessionID   string    `json:"sid,omitempty"`
	FromSession []string  `json:"from_session,omitempty"`
	Expires     time.Time `json:"expires"`
	stored      bool
}

type attemptRequest struct {
	ReturnTo   string    `json:"return_to"`
	AcrValues  []string  `json:"acr_values,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	ForceLogin bool      `json:"force_login,omitempty"`
	LoginHint  string    `json:"login_hint,omitempty"`
	UILocales  string    `json:"ui_locales,omitempty"`
	Client     string    `json:"client,omitempty"`
	ClientID   string    `json:"client_id,omitempty"`
}

// attemptToken is the sealed part: who started it and what it asks.
type attemptToken struct {
	ID      string         `json:"id"`
	Browser string         `json:"b"`
	Req     attemptRequest `json:"r"`
	Expires time.Time      `json:"exp"`
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

// Ender ends an SSO session with everything hanging on it (package
// logout); the chain calls it when another person signs in in a browser.
type Ender interface {
	EndReplaced(ctx context.Context, sid string) error
	// LimitSessions ends a user's oldest sessions beyond the cap.
	LimitSessions(ctx context.Context, subject string) error
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
	if opt.Sessions == nil || opt.Logout == nil {
		return nil, errors.New("chain: Sessions and Logout are required")
	}
	start, nodes, ranks, err := build(cfg, Deps{Users: opt.Users, Store: opt.Store, Now: opt.Sessions.Now, Audit: opt.Audit})
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
	// auth_time is when the person authenticated: when the start module
	// (which identifies them) was passed. A later step-up does not make
	// an old sign-in fresh, so max_age still asks for the first factor.
	for _, x := range p {
		if x.Module == e.start.Name {
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
//
// What a login asks is the user's baseline — every module after a passed
// one that applies to this user (a factor they enrolled, a mandatory
// module, any module that does not depend on the user), except those
// shown only when needed — plus, while a requested level is missing, the
// modules that lead to it. acr_values and the claims parameter can only
// add to the baseline, never take from it.
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
	needMore := len(acrValues) > 0 && !e.outcome(passed, acrValues).Satisfied
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
	visit(e.start)
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

const (
	keyAttempt     = "attempt:"
	purposeAttempt = "login-attempt"
	maxTokenBytes  = 8 << 10
)

// Start begins a login for req and redirects the browser to its first
// page. It writes nothing to the store.
func (e *Engine) Start(w http.ResponseWriter, r *http.Request, req Request) error {
	tok := attemptToken{
		ID:      randomID(),
		Browser: e.opt.Sessions.BrowserID(w, r),
		Req: attemptRequest{
			ReturnTo: req.ReturnTo, AcrValues: req.AcrValues, Since: req.Since, ForceLogin: req.ForceLogin,
			LoginHint: req.LoginHint, UILocales: req.UILocales, Client: req.Client, ClientID: req.ClientID,
		},
		Expires: e.opt.Sessions.Now().Add(e.opt.AttemptTTL),
	}
	sealed, err := e.opt.Sessions.Seal(purposeAttempt, tok, e.opt.AttemptTTL)
	if err != nil {
		return err
	}
	http.Redirect(w, r, e.opt.LoginPath+"?"+url.Values{"attempt": {sealed}}.Encode(), http.StatusSeeOther)
	return nil
}

var (
	errAttemptGone   = errors.New("login attempt expired or unknown")
	errAttemptLocked = errors.New("login attempt locked after too many failures")
	errSessionEnded  = errors.New("the session ended during the sign-in")
)

// loadAttempt opens the sealed attempt token for this browser: the
// stored attempt when a form was posted in it already, else a fresh one
// with what the browser's cookies say (its SSO session, remembered
// devices).
func (e *Engine) loadAttempt(w http.ResponseWriter, r *http.Request, token string) (*Attempt, error) {
	var tok attemptToken
	if token == "" || len(token) > maxTokenBytes || e.opt.Sessions.Open(purposeAttempt, token, &tok) != nil {
		return nil, errAttemptGone
	}
	// An attempt started in another browser is not this browser's to
	// finish (login CSRF and session fixation).
	if tok.Browser == "" || tok.Browser != e.opt.Sessions.BrowserID(w, r) {
		return nil, errAttemptGone
	}
	ctx := r.Context()
	b, err := e.opt.Store.Get(ctx, keyAttempt+tok.ID)
	switch {
	case err == nil:
		var a Attempt
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("decoding login attempt: %w", err)
		}
		if a.Browser != tok.Browser || a.Finished {
			return nil, errAttemptGone
		}
		if a.Locked {
			return nil, errAttemptLocked
		}
		a.stored = true
		if err := e.revalidate(ctx, &a); err != nil {
			return nil, err
		}
		return &a, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("loading login attempt: %w", err)
	}
	a := &Attempt{ID: tok.ID, Browser: tok.Browser, Req: tok.Req, Token: token, Expires: tok.Expires}
	if !tok.Req.ForceLogin {
		if s, err := e.opt.Sessions.Load(r); err == nil {
			a.Subject = s.Subject
			a.Passed = fresh(s.Passed, tok.Req.Since)
			a.SessionID = s.ID
			for _, p := range a.Passed {
				a.FromSession = append(a.FromSession, p.Module)
			}
		} else if !errors.Is(err, session.ErrNoSession) {
			return nil, err
		}
	}
	if err := e.addRemembered(ctx, r, a); err != nil {
		return nil, err
	}
	if err := e.revalidate(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// revalidate keeps a stored attempt honest about what happened since it
// was saved: a user disabled or removed meanwhile cannot finish it,
// passes made before a password change no longer count, and passes taken
// from an SSO session that has ended since are dropped.
func (e *Engine) revalidate(ctx context.Context, a *Attempt) error {
	if a.Subject == "" {
		return nil
	}
	u, err := e.opt.Users.Get(ctx, a.Subject)
	if errors.Is(err, users.ErrNotFound) {
		return errAttemptGone
	} else if err != nil {
		return err
	}
	if u.Disabled {
		return errAttemptGone
	}
	changed := u.PasswordChangedAt.Truncate(time.Second)
	a.Passed = slices.DeleteFunc(a.Passed, func(p session.Passed) bool { return p.At.Before(changed) })
	if a.SessionID != "" {
		if _, err := e.opt.Sessions.Get(ctx, a.SessionID); errors.Is(err, session.ErrNoSession) {
			a.Passed = slices.DeleteFunc(a.Passed, func(p session.Passed) bool { return slices.Contains(a.FromSession, p.Module) })
			a.SessionID, a.FromSession = "", nil
		} else if err != nil {
			return err
		}
	}
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
	a.stored = true
	return nil
}

// countFailure counts one rejected submission in a single atomic update
// (storing the attempt if it was not yet), so that wrong answers sent at
// once each count. At maxFailures the attempt is locked until it
// expires: its sealed token, sent again, finds the lock.
func (e *Engine) countFailure(ctx context.Context, a *Attempt) (locked bool, err error) {
	ttl := a.Expires.Sub(e.opt.Sessions.Now())
	if ttl <= 0 {
		return false, errAttemptGone
	}
	mine, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	err = e.opt.Store.Update(ctx, keyAttempt+a.ID, ttl, func(old []byte) ([]byte, error) {
		if old == nil {
			old = mine
		}
		var cur Attempt
		if err := json.Unmarshal(old, &cur); err != nil {
			return nil, fmt.Errorf("decoding login attempt: %w", err)
		}
		cur.Failures++
		cur.Locked = cur.Locked || cur.Failures >= maxFailures
		locked = cur.Locked
		return json.Marshal(&cur)
	})
	if err != nil {
		return false, err
	}
	a.Failures++
	a.stored = true
	return locked, nil
}

// markFinished spends the attempt, once: of two requests finishing it at
// the same time, one gets errAttemptGone.
func (e *Engine) markFinished(ctx context.Context, a *Attempt) error {
	ttl := a.Expires.Sub(e.opt.Sessions.Now())
	if ttl <= 0 {
		return errAttemptGone
	}
	done, err := json.Marshal(Attempt{ID: a.ID, Browser: a.Browser, Finished: true, Expires: a.Expires})
	if err != nil {
		return err
	}
	return e.opt.Store.Update(ctx, keyAttempt+a.ID, ttl, func(old []byte) ([]byte, error) {
		if old != nil {
			var cur Attempt
			if json.Unmarshal(old, &cur) != nil || cur.Finished || cur.Locked {
				return nil, errAttemptGone
			}
		}
		return done, nil
	})
}

func randomID() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
