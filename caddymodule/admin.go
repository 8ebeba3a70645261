package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/sets"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI adds /gatehouse/ to Caddy's admin API (local address only, as
// Caddy's admin endpoint is). The `caddy gatehouse` commands use it, so
// they work while Caddy holds the store open.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.gatehouse", New: func() caddy.Module { return new(AdminAPI) }}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(*App, http.ResponseWriter, *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			app, err := runningApp()
			if err == nil {
				// Every change through the admin API leaves an audit line:
				// what, on what, and from where (the admin API has no
				// accounts; its address is the caller).
				// One change is one transaction of Security Event
				// Tokens (a deleted account and its ended sessions).
				var target adminTarget
				r = r.WithContext(context.WithValue(sets.WithTxn(r.Context()), adminTargetKey{}, &target))
				err = h(app, w, r)
				// Reads are not audited, except those that name what they
				// read (a store export).
				if r.Method != http.MethodGet || target.name != "" {
					ev := audit.Event{Event: audit.AdminAction, Admin: r.RemoteAddr, Target: target.name, Subject: target.subject,
						Reason: r.Method + " " + r.URL.Path}
					if err != nil {
						ev.Reason += " (refused: " + err.Error() + ")"
					}
					app.audit.Record(r.Context(), ev)
				}
			}
			if errors.Is(err, errStreamCut) {
				panic(http.ErrAbortHandler) // the client must not take it for complete
			}
			if err != nil {
				var apiErr caddy.APIError
				if !errors.As(err, &apiErr) {
					apiErr = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
				}
				msg := apiErr.Message
				if msg == "" && apiErr.Err != nil {
					msg = apiErr.Err.Error()
				}
				writeAdminJSON(w, apiErr.HTTPStatus, map[string]string{"error": msg})
			}
		})
	}
	handle("GET /gatehouse/users", listUsers)
	handle("POST /gatehouse/users", addUser)
	handle("POST /gatehouse/users/password", setPassword)
	handle("POST /gatehouse/users/disabled", setDisabled)
	handle("POST /gatehouse/users/groups", setGroups)
	handle("POST /gatehouse/users/profile", setProfile)
	handle("POST /gatehouse/users/reset-totp", resetTOTP)
	handle("GET /gatehouse/modules/actions", listModuleActions)
	handle("POST /gatehouse/users/module-action", runModuleAction)
	handle("POST /gatehouse/users/forget-devices", forgetDevices)
	handle("POST /gatehouse/users/delete", deleteUser)
	handle("POST /gatehouse/clients/delete", deleteClient)
	handle("GET /gatehouse/sessions", listSessions)
	handle("GET /gatehouse/logout-deliveries", logoutStats)
	handle("POST /gatehouse/sessions/revoke", revokeSessions)
	handle("GET /gatehouse/clients", listClients)
	handle("POST /gatehouse/clients", addClient)
	handle("POST /gatehouse/registration-tokens", createRegistrationToken)
	handle("POST /gatehouse/keys/rotate", rotateKeys)
	handle("GET /gatehouse/store/export", exportStore)
	handle("POST /gatehouse/store/import", importStore)
	handle("GET /gatehouse/bans", listBans)
	handle("POST /gatehouse/bans", addBan)
	handle("POST /gatehouse/bans/lift", liftBan)
	mux.HandleFunc("/gatehouse/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminJSON(w, http.StatusNotFound, map[string]string{"error": "unknown gatehouse admin endpoint " + r.Method + " " + r.URL.Path})
	})
	return []caddy.AdminRoute{{
		Pattern: "/gatehouse/",
		Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			mux.ServeHTTP(w, r)
			return nil
		}),
	}}
}

func runningApp() (*App, error) {
	v, err := caddy.ActiveContext().AppIfConfigured("gatehouse")
	if err != nil || v == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound,
			Message: "the running Caddy has no gatehouse app configured"}
	}
	return v.(*App), nil
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(format string, args ...any) error {
	return caddy.APIError{HTTPStatus: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad request body: %v", err)
	}
	return nil
}

// userRequest is the body of user commands.
type userRequest struct {
	Username      string   `json:"username"`
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Name          string   `json:"name,omitempty"`
	GivenName     string   `json:"given_name,omitempty"`
	FamilyName    string   `json:"family_name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	Password      string   `json:"password,omitempty"`
	Disabled      bool     `json:"disabled,omitempty"`
}

func listUsers(a *App, w http.ResponseWriter, r *http.Request) error {
	list, err := a.users.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]users.User, 0, len(list))
	for _, u := range list {
		out = append(out, u.Public())
	}
	writeAdminJSON(w, http.StatusOK, out)
	return nil
}

func addUser(a *App, w http.ResponseWriter, r *http.Request) error {
	var req userRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Password == "" {
		return badRequest("a password is required")
	}
	setAdminTarget(r, "user:"+req.Username)
	u, err := a.users.Create(r.Context(), users.User{
		Username: req.Username, Email: req.Email, EmailVerified: req.EmailVerified, Name: req.Name,
		GivenName: req.GivenName, FamilyName: req.FamilyName, Groups: req.Groups,
	}, req.Password)
	if errors.Is(err, users.ErrTaken) {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Message: err.Error()}
	} else if err != nil {
		return badRequest("%v", err)
	}
	setAdminSubject(r, u.Subject)
	writeAdminJSON(w, http.StatusCreated, u.Public())
	return nil
}

func findUser(a *App, r *http.Request, username string) (users.User, error) {
	u, err := a.users.Lookup(r.Context(), username)
	if errors.Is(err, users.ErrNotFound) {
		return u, caddy.APIError{HTTPStatus: http.StatusNotFound, Message: fmt.Sprintf("no user %q", username)}
	}
	return u, err
}

// userHandler is an admin action on one user named in the body.
type userHandler func(a *App, r *http.Request, req userRequest, u users.User) (any, error)

// onUser decodes the body, finds the user and writes fn's result.
func onUser(fn userHandler) func(*App, http.ResponseWriter, *http.Request) error {
	return func(a *App, w http.ResponseWriter, r *http.Request) error {
		var req userRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		u, err := findUser(a, r, req.Username)
		if err != nil {
			return err
		}
		setAdminTarget(r, "user:"+u.Username)
		setAdminSubject(r, u.Subject)
		out, err := fn(a, r, req, u)
		if err != nil {
			return err
		}
		writeAdminJSON(w, http.StatusOK, out)
		return nil
	}
}

var setPassword = onUser(func(a *App, r *http.Request, req userRequest, u users.User) (any, error) {
	if req.Password == "" {
		return nil, badRequest("a password is required")
	}
	u, err := a.users.SetPassword(r.Context(), u.Subject, req.Password)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	a.audit.Record(r.Context(), audit.Event{Event: audit.PasswordChanged, User: u.Username, Subject: u.Subject, Admin: r.RemoteAddr})
	// A new password ends every session: whoever knew the old one is out.
	if !a.KeepSessionsOnPasswordChange {
		if _, err := a.logout.EndAll(r.Context(), u.Subject, logout.Password); err != nil {
			return nil, err
		}
	}
	return u.Public(), nil
})

var setDisabled = onUser(func(a *App, r *http.Request, req userRequest, u users.User) (any, error) {
	u, err := a.users.Update(r.Context(), u.Subject, func(u *users.User) error {
		u.Disabled = req.Disabled
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		if _, err := a.logout.EndAll(r.Context(), u.Subject, logout.Disabled); err != nil {
			return nil, err
		}
	}
	return u.Public(), nil
})

var setGroups = onUser(func(a *App, r *http.Request, req userRequest, u users.User) (any, error) {
	for _, g := range req.Groups {
		if g == "" || strings.ContainsAny(g, ", \t") {
			return nil, badRequest("bad group name %q", g)
		}
	}
	u, err := a.users.Update(r.Context(), u.Subject, func(u *users.User) error {
		u.Groups = req.Groups
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u.Public(), nil
})

var forgetDevices = onUser(func(a *App, r *http.Request, _ userRequest, u users.User) (any, error) {
	return forgetDevicesOf(a, r, u)
})

func forgetDevicesOf(a *App, r *http.Request, u users.User) (any, error) {
	n, err := chain.Forget(r.Context(), a.state.st, u.Subject)
	if err != nil {
		return nil, err
	}
	return map[string]any{"username": u.Username, "devices_forgotten": n}, nil
}

type sessionInfo struct {
	SID      string    `json:"sid"`
	Username string    `json:"username"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Expires  time.Time `json:"expires"`
	Clients  []string  `json:"clients"`
	Modules  []string  `json:"modules"`
	Device   string    `json:"device,omitempty"`
	IP       string    `json:"ip,omitempty"`
}

// listSessions lists the sessions of ?user=, or of every user.
func listSessions(a *App, w http.ResponseWriter, r *http.Request) error {
	var who []users.User
	if name := r.URL.Query().Get("user"); name != "" {
		u, err := findUser(a, r, name)
		if err != nil {
			return err
		}
		who = append(who, u)
	} else {
		all, err := a.users.List(r.Context())
		if err != nil {
			return err
		}
		who = all
	}
	out := []sessionInfo{}
	for _, u := range who {
		list, err := a.sessions.ListFor(r.Context(), u.Subject)
		if err != nil {
			return err
		}
		for _, s := range list {
			var mods []string
			for _, p := range s.Passed {
				mods = append(mods, p.Module)
			}
			out = append(out, sessionInfo{SID: s.ID, Username: u.Username, Created: s.Created, LastSeen: s.LastSeen,
				Expires: s.Expires, Clients: s.Clients, Modules: mods, Device: s.Device, IP: s.IP})
		}
	}
	writeAdminJSON(w, http.StatusOK, out)
	return nil
}

func revokeSessions(a *App, w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username string `json:"username,omitempty"`
		SID      string `json:"sid,omitempty"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	switch {
	case req.SID != "" && req.Username == "":
		s, err := a.sessions.Get(ctx, req.SID)
		if errors.Is(err, session.ErrNoSession) {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no live session with that sid"}
		} else if err != nil {
			return err
		}
		if err := a.logout.End(ctx, s.ID, logout.ByAdmin); err != nil {
			return err
		}
		writeAdminJSON(w, http.StatusOK, map[string]int{"revoked": 1})
	case req.Username != "" && req.SID == "":
		u, err := findUser(a, r, req.Username)
		if err != nil {
			return err
		}
		n, err := a.logout.EndAll(ctx, u.Subject, logout.ByAdmin)
		if err != nil {
			return err
		}
		writeAdminJSON(w, http.StatusOK, map[string]int{"revoked": n})
	default:
		return badRequest("give either a username or a sid")
	}
	return nil
}

// logoutStats reports back-channel logout deliveries since start and the
// queue length.
func logoutStats(a *App, w http.ResponseWriter, r *http.Request) error {
	q := a.logout.Queue()
	queued, err := q.Len(r.Context())
	if err != nil {
		return err
	}
	st := &q.Stats
	writeAdminJSON(w, http.StatusOK, map[string]int64{"delivered": st.Delivered.Load(), "failed_attempts": st.Failed.Load(),
		"given_up": st.GivenUp.Load(), "queued": int64(queued)})
	return nil
}

// clientResponse shows a client; the secret only once, when generated.
type clientResponse struct {
	provider.Client
	ClientSecret string `json:"client_secret,omitempty"`
}

func listClients(a *App, w http.ResponseWriter, r *http.Request) error {
	list, err := a.clients.List(r.Context())
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, list)
	return nil
}

func addClient(a *App, w http.ResponseWriter, r *http.Request) error {
	var c provider.Client
	if err := decodeBody(r, &c); err != nil {
		return err
	}
	var secret string
	if !c.Public {
		secret = provider.NewClientSecret()
	}
	c.SecretHash = nil
	if err := a.clients.Add(r.Context(), c, secret); err != nil {
		return badRequest("%v", err)
	}
	got, err := a.clients.Get(r.Context(), c.ID)
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusCreated, clientResponse{Client: *got, ClientSecret: secret})
	return nil
}

func rotateKeys(a *App, w http.ResponseWriter, r *http.Request) error {
	kid, err := a.keys.Rotate(r.Context())
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, map[string]string{"active_kid": kid})
	return nil
}

var _ caddy.AdminRouter = AdminAPI{}
