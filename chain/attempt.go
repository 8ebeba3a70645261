package chain

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Attempt is one browser's walk through the chain. Until a form is
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
	// Pending is an identity at another issuer waiting to be linked to
	// the account the person signs in to in this attempt (see link).
	Pending *PendingLink `json:"pending_link,omitempty"`
	stored  bool
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
	// Account names the module of an account attempt (StartAccount),
	// which adds to the account of AccountOf, the signed-in user.
	Account   string `json:"account,omitempty"`
	AccountOf string `json:"account_of,omitempty"`
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
	// The application's ui_locales choose the language of the pages.
	web.PreferLocales(w, tok.Req.UILocales)
	// An attempt started in another browser is not this browser's to
	// finish (login CSRF and session fixation).
	if tok.Browser == "" || tok.Browser != e.opt.Sessions.BrowserID(w, r) {
		return nil, errAttemptGone
	}
	ctx := r.Context()
	a, err := e.storedAttempt(ctx, tok.ID, tok.Browser)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return a, err
	}
	a = &Attempt{ID: tok.ID, Browser: tok.Browser, Req: tok.Req, Token: token, Expires: tok.Expires}
	if a.Account() {
		// Adding to an account: its user, and nothing passed or
		// remembered counts (the module is asked in any case).
		if err := e.accountAttempt(r, a); err != nil {
			return nil, err
		}
		return a, e.revalidate(ctx, a)
	}
	if !tok.Req.ForceLogin {
		s, err := e.opt.Sessions.Load(r)
		if err == nil {
			// The session vouches only for a user who may still sign in
			// (an account of a user source, LDAP, is checked there again
			// now and then): else the person signs in afresh.
			u, uerr := e.opt.Users.Current(ctx, s.Subject)
			switch {
			case errors.Is(uerr, users.ErrNotFound) || uerr == nil && u.Disabled:
				s, err = nil, session.ErrNoSession
			case uerr != nil:
				return nil, uerr
			}
		}
		if err == nil {
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

// storedAttempt loads the stored attempt id of browser (store.ErrNotFound
// when it was never stored); a finished one, or another browser's, is
// gone.
func (e *Engine) storedAttempt(ctx context.Context, id, browser string) (*Attempt, error) {
	b, err := e.opt.Store.Get(ctx, keyAttempt+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("loading login attempt: %w", err)
	}
	var a Attempt
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decoding login attempt: %w", err)
	}
	if a.Browser == "" || a.Browser != browser || a.Finished {
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
}

// moveTo hands a stored attempt to the browser of this request (a mailed
// link opened there, ContinueThere): it keeps nothing it had passed — the
// browser that asked vouched for those, by its session or its trusted
// devices — and gets a new token for the new browser. The old browser's
// token finds it moved, so only one browser can finish it.
func (e *Engine) moveTo(w http.ResponseWriter, r *http.Request, a *Attempt) error {
	a.Browser = e.opt.Sessions.BrowserID(w, r)
	a.Passed, a.FromSession, a.SessionID, a.Fresh = nil, nil, "", false
	ttl := a.Expires.Sub(e.opt.Sessions.Now())
	if ttl <= 0 {
		return errAttemptGone
	}
	sealed, err := e.opt.Sessions.Seal(purposeAttempt, attemptToken{ID: a.ID, Browser: a.Browser, Req: a.Req, Expires: a.Expires}, ttl)
	if err != nil {
		return err
	}
	a.Token = sealed
	return e.saveAttempt(r.Context(), a)
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
	if a.Account() {
		// Adding to an account needs the session it started from.
		if s, err := e.opt.Sessions.Get(ctx, a.SessionID); errors.Is(err, session.ErrNoSession) || err == nil && s.Subject != a.Subject {
			return errSessionEnded
		} else if err != nil {
			return err
		}
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
