package console

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/sets"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Path is where the console lives below the issuer's path.
const Path = provider.PathConsole

// Defaults of the access settings.
const (
	DefaultGroup  = "admins"
	DefaultACR    = "2"
	DefaultMaxAge = 15 * time.Minute
)

// Config is what the console needs.
type Config struct {
	// Prefix is the issuer's URL path ("" for a host-only issuer);
	// Static the URL prefix of the assets.
	Prefix, Static string
	Sessions       *session.Manager
	Users          *users.Directory
	Chain          *chain.Engine
	Admin          *admin.Service
	// Recent keeps the audit events the audit page searches.
	Recent *Recent
	// Group is the group whose members may use the console (default
	// admins); ACR the level their session must reach (default 2);
	// MaxAge how recent their sign-in must be (default 15m).
	Group  string
	ACR    string
	MaxAge time.Duration
	Logger *slog.Logger
}

// Console is the admin console handler.
type Console struct {
	cfg  Config
	base string
	mux  *http.ServeMux
}

// New returns the console for cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Sessions == nil || cfg.Users == nil || cfg.Chain == nil || cfg.Admin == nil || cfg.Recent == nil {
		return nil, errors.New("console: Sessions, Users, Chain, Admin and Recent are required")
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.ACR == "" {
		cfg.ACR = DefaultACR
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Console{cfg: cfg, base: cfg.Prefix + Path, mux: http.NewServeMux()}
	c.mux.HandleFunc(c.base, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, c.base+"/users", http.StatusSeeOther)
	})
	c.page("/users", c.usersPage, c.usersAction)
	c.page("/user", c.userPage, c.userAction)
	c.page("/clients", c.clientsPage, c.clientsAction)
	c.page("/sessions", c.sessionsPage, c.sessionsAction)
	c.page("/bans", c.bansPage, c.bansAction)
	c.page("/keys", c.keysPage, c.keysAction)
	c.page("/audit", c.auditPage, nil)
	c.mux.HandleFunc(c.base+"/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := c.admit(w, r); ok {
			c.errorPage(w, http.StatusNotFound, "Not found", "The admin console has no such page.")
		}
	})
	return c, nil
}

// ServeHTTP serves the console's pages. The admin's address (as Caddy
// determined it) goes on every audit line the request records.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mux.ServeHTTP(w, r.WithContext(audit.WithIP(r.Context(), regulate.ClientIP(r))))
}

// req is an admitted request: the admin and the page's CSRF token.
type req struct {
	*http.Request
	w     http.ResponseWriter
	admin users.User
	sid   string
	csrf  string
}

// view renders one page; act runs one form's action and returns the
// note to show on the page it redirects back to (or "" when it wrote the
// answer itself).
type (
	view func(r *req)
	act  func(r *req, action string) (note string, err error)
)

// page registers a console page: GET shows it, POST runs one action on
// it with a CSRF token, audited.
func (c *Console) page(path string, get view, post act) {
	c.mux.HandleFunc(c.base+path, func(w http.ResponseWriter, r *http.Request) {
		rq, ok := c.admit(w, r)
		if !ok {
			return
		}
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			get(rq)
		case r.Method == http.MethodPost && post != nil:
			c.post(rq, path, post)
		default:
			allow := "GET"
			if post != nil {
				allow += ", POST"
			}
			w.Header().Set("Allow", allow)
			c.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		}
	})
}

// maxForm bounds a console form.
const maxForm = 64 << 10

func (c *Console) post(r *req, path string, fn act) {
	r.Body = http.MaxBytesReader(r.w, r.Body, maxForm)
	if r.ParseForm() != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(r.csrf)) != 1 {
		c.cfg.Admin.Record(r.Context(), admin.Action{Admin: r.admin.Username, Target: "console",
			What: "POST " + r.URL.Path}, errors.New("no valid CSRF token"))
		c.errorPage(r.w, http.StatusForbidden, "This form has expired", "Reload the page and try again.")
		return
	}
	action := r.PostForm.Get("action")
	if !isAction(action) {
		// The action names a button; anything else is not written to
		// the audit trail as it came.
		r.record(c, "console", "", "console POST "+r.URL.Path, errors.New("unknown action"))
		c.errorPage(r.w, http.StatusBadRequest, "Unknown action", "Go back and use one of the buttons.")
		return
	}
	// One action is one transaction of Security Event Tokens (a deleted
	// account and its ended sessions).
	r.Request = r.WithContext(sets.WithTxn(r.Context()))
	note, err := fn(r, action)
	var refused *admin.Error
	switch {
	case err == nil && note == "":
		// The action wrote its own answer.
	case err == nil:
		c.redirect(r, path, note)
	case errors.As(err, &refused):
		c.errorPage(r.w, refusedStatus[refused.Kind], "Not done", refused.Msg)
	default:
		c.cfg.Logger.Error("gatehouse console: "+action, "error", err)
		c.errorPage(r.w, http.StatusInternalServerError, "Something went wrong",
			"The action could not be completed. It may have been done in part; check the page and try again.")
	}
}

// isAction: a button's action is a short word of lowercase letters and
// dashes.
func isAction(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '-' {
			return false
		}
	}
	return true
}

var refusedStatus = map[admin.Kind]int{admin.Invalid: http.StatusBadRequest, admin.NotFound: http.StatusNotFound, admin.Conflict: http.StatusConflict}

// record writes the admin_action line of an action on target; what
// starts with "console " (audit.ConsoleUser… for changes to accounts).
func (r *req) record(c *Console, target, subject, what string, err error) {
	c.cfg.Admin.Record(r.Context(), admin.Action{Admin: r.admin.Username, Target: target, Subject: subject, What: what}, err)
}

// noteTTL is how long the note after an action can be shown.
const (
	noteTTL     = 2 * time.Minute
	purposeNote = "console-note"
)

// redirect sends the browser back to a page (GET after POST) with a
// sealed note, so no link can make the console say something.
func (c *Console) redirect(r *req, path, note string) {
	q := url.Values{}
	if path == "/user" {
		q.Set("name", r.PostForm.Get("username"))
	}
	if sealed, err := c.cfg.Sessions.Seal(purposeNote, note, noteTTL); err == nil {
		q.Set("note", sealed)
	}
	http.Redirect(r.w, r.Request, c.base+path+"?"+q.Encode(), http.StatusSeeOther)
}

// note is the sealed note of the URL, if any.
func (c *Console) note(r *req) string {
	var n string
	if s := r.URL.Query().Get("note"); s != "" && len(s) < 4096 && c.cfg.Sessions.Open(purposeNote, s, &n) == nil {
		return n
	}
	return ""
}

// admit checks the signed-in session: a live, enabled account in the
// admin group whose session reaches the console's level with a recent
// enough sign-in. Otherwise it answers (a step-up, or a page) and
// returns false.
func (c *Console) admit(w http.ResponseWriter, r *http.Request) (*req, bool) {
	ctx := r.Context()
	self := r.URL.Path
	if r.URL.RawQuery != "" && r.Method == http.MethodGet {
		self += "?" + r.URL.RawQuery
	}
	if !strings.HasPrefix(self, c.base) || len(self) > 2048 {
		self = c.base
	}
	s, u, err := c.liveSession(r)
	if err != nil {
		c.serverError(w, "loading session", err)
		return nil, false
	}
	since := c.cfg.Sessions.Now().Add(-c.cfg.MaxAge)
	step := chain.Request{ReturnTo: self, AcrValues: []string{c.cfg.ACR}, Since: since}
	if s == nil {
		if r.Method != http.MethodGet {
			c.errorPage(w, http.StatusForbidden, "Signed out", "Your session has ended. Sign in again to use the admin console.")
			return nil, false
		}
		// Sign in first as the chain asks anyone; the level is asked of
		// admins only, once they are known.
		c.start(w, r, chain.Request{ReturnTo: self})
		return nil, false
	}
	if !slices.Contains(u.Groups, c.cfg.Group) {
		c.cfg.Admin.Record(ctx, admin.Action{Admin: u.Username, Target: "console", Subject: u.Subject,
			What: r.Method + " " + r.URL.Path}, fmt.Errorf("not in group %s", c.cfg.Group))
		c.errorPage(w, http.StatusForbidden, "Not an administrator",
			"You are signed in as "+u.Username+", who may not use the admin console. Ask an administrator to add you to the "+c.cfg.Group+" group.")
		return nil, false
	}
	o, err := c.cfg.Chain.Evaluate(ctx, s.Subject, s.Passed, []string{c.cfg.ACR}, since)
	if err != nil {
		c.serverError(w, "evaluating session", err)
		return nil, false
	}
	switch {
	case o.Done && o.Satisfied:
	case o.Done:
		// Nothing more the chain can ask this person reaches the level.
		c.cfg.Admin.Record(ctx, admin.Action{Admin: u.Username, Target: "console", Subject: u.Subject,
			What: r.Method + " " + r.URL.Path}, fmt.Errorf("cannot reach level %s", c.cfg.ACR))
		detail := "The admin console needs sign-in level " + c.cfg.ACR + ", which your account cannot reach."
		if !slices.Contains(c.cfg.Chain.Levels(), c.cfg.ACR) {
			detail = "The admin console needs sign-in level " + c.cfg.ACR + ", which the sign-in chain does not have: " +
				"give the chain a module of that level, or set admin_console acr to one of its levels."
		}
		c.errorPage(w, http.StatusForbidden, "A stronger sign-in is needed", detail)
		return nil, false
	case r.Method != http.MethodGet:
		// A form posted after the sign-in got too old: nothing is done;
		// the page (a GET) asks for a new sign-in.
		c.errorPage(w, http.StatusForbidden, "Confirm it is you",
			"Your sign-in is older than "+c.cfg.MaxAge.String()+". Reload the admin console page, sign in again, and repeat the action.")
		return nil, false
	default:
		c.start(w, r, step)
		return nil, false
	}
	browser := c.cfg.Sessions.BrowserID(w, r)
	return &req{Request: r, w: w, admin: u, sid: s.ID, csrf: c.cfg.Sessions.CSRFToken(browser, "console:"+s.ID)}, true
}

func (c *Console) start(w http.ResponseWriter, r *http.Request, step chain.Request) {
	if err := c.cfg.Chain.Start(w, r, step); err != nil {
		c.serverError(w, "starting sign-in", err)
	}
}

// liveSession is the request's session and its enabled account, or nil.
func (c *Console) liveSession(r *http.Request) (*session.Session, users.User, error) {
	s, err := c.cfg.Sessions.Load(r)
	if errors.Is(err, session.ErrNoSession) {
		return nil, users.User{}, nil
	} else if err != nil {
		return nil, users.User{}, err
	}
	u, err := c.cfg.Users.Get(r.Context(), s.Subject)
	if errors.Is(err, users.ErrNotFound) || err == nil && u.Disabled {
		return nil, users.User{}, nil
	}
	return s, u, err
}

func (c *Console) errorPage(w http.ResponseWriter, status int, title, detail string) {
	web.Error(w, c.cfg.Static, status, title, detail)
}

func (c *Console) serverError(w http.ResponseWriter, what string, err error) {
	c.cfg.Logger.Error("gatehouse console: "+what, "error", err)
	c.errorPage(w, http.StatusInternalServerError, "Something went wrong", "The admin console could not complete the request. Please try again in a moment.")
}

// nav is a link of the console's menu.
type nav struct {
	Label, URL string
	Current    bool
}

// consolePage is what every console template receives as Data.
type consolePage struct {
	Admin, CSRF, Base, Note string
	Nav                     []nav
	// Page is the page's own data.
	Page any
}

// render writes a console page.
func (c *Console) render(r *req, status int, name, title string, data any) {
	here := strings.TrimPrefix(r.URL.Path, c.base)
	var menu []nav
	for _, n := range [][2]string{{"Users", "/users"}, {"Clients", "/clients"}, {"Sessions", "/sessions"},
		{"Bans", "/bans"}, {"Signing keys", "/keys"}, {"Audit trail", "/audit"}} {
		menu = append(menu, nav{Label: n[0], URL: c.base + n[1], Current: here == n[1] || n[1] == "/users" && here == "/user"})
	}
	// The console is in English only: its pages say so whatever the
	// default language.
	web.Render(r.w, status, name, web.Page{Title: title, Static: c.cfg.Static, Lang: "en",
		Data: consolePage{Admin: r.admin.Username, CSRF: r.csrf, Base: c.base, Note: c.note(r), Nav: menu, Page: data}})
}

// when formats a time for the console.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

var _ http.Handler = (*Console)(nil)
