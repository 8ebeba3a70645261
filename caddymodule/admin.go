package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/provider"
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
					app.admin.Record(r.Context(), admin.Action{Admin: r.RemoteAddr, Target: target.name, Subject: target.subject,
						What: r.Method + " " + r.URL.Path}, err)
				}
			}
			if errors.Is(err, errStreamCut) {
				panic(http.ErrAbortHandler) // the client must not take it for complete
			}
			if err != nil {
				var apiErr caddy.APIError
				var refused *admin.Error
				switch {
				case errors.As(err, &apiErr):
				case errors.As(err, &refused):
					apiErr = caddy.APIError{HTTPStatus: refusedStatus[refused.Kind], Message: refused.Msg}
				case errors.Is(err, users.ErrReadOnly):
					apiErr = caddy.APIError{HTTPStatus: http.StatusConflict, Message: err.Error()}
				default:
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
	out, err := a.admin.ListUsers(r.Context())
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, out)
	return nil
}

func addUser(a *App, w http.ResponseWriter, r *http.Request) error {
	var req userRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	setAdminTarget(r, "user:"+req.Username)
	u, err := a.admin.CreateUser(r.Context(), users.User{
		Username: req.Username, Email: req.Email, EmailVerified: req.EmailVerified, Name: req.Name,
		GivenName: req.GivenName, FamilyName: req.FamilyName, Groups: req.Groups,
	}, req.Password)
	if err != nil {
		return err
	}
	setAdminSubject(r, u.Subject)
	writeAdminJSON(w, http.StatusCreated, u)
	return nil
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
		u, err := a.admin.FindUser(r.Context(), req.Username)
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
	return a.admin.SetPassword(r.Context(), r.RemoteAddr, u, req.Password)
})

var setDisabled = onUser(func(a *App, r *http.Request, req userRequest, u users.User) (any, error) {
	return a.admin.SetDisabled(r.Context(), u, req.Disabled)
})

var setGroups = onUser(func(a *App, r *http.Request, req userRequest, u users.User) (any, error) {
	return a.admin.SetGroups(r.Context(), u, req.Groups)
})

var forgetDevices = onUser(func(a *App, r *http.Request, _ userRequest, u users.User) (any, error) {
	n, err := a.admin.ForgetDevices(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return map[string]any{"username": u.Username, "devices_forgotten": n}, nil
})

// listSessions lists the sessions of ?user=, or of every user.
func listSessions(a *App, w http.ResponseWriter, r *http.Request) error {
	out, err := a.admin.ListSessions(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		return err
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
		sub, err := a.admin.EndSession(ctx, req.SID)
		if err != nil {
			return err
		}
		setAdminSubject(r, sub)
		writeAdminJSON(w, http.StatusOK, map[string]int{"revoked": 1})
	case req.Username != "" && req.SID == "":
		u, err := a.admin.FindUser(ctx, req.Username)
		if err != nil {
			return err
		}
		setAdminTarget(r, "user:"+u.Username)
		setAdminSubject(r, u.Subject)
		n, err := a.admin.EndSessions(ctx, u)
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
	list, err := a.admin.ListClients(r.Context())
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
	setAdminTarget(r, "client:"+c.ID)
	got, secret, err := a.admin.AddClient(r.Context(), c)
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusCreated, clientResponse{Client: *got, ClientSecret: secret})
	return nil
}

func rotateKeys(a *App, w http.ResponseWriter, r *http.Request) error {
	kid, err := a.admin.RotateKeys(r.Context())
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, map[string]string{"active_kid": kid})
	return nil
}

// refusedStatus is the HTTP status of each kind of refusal.
var refusedStatus = map[admin.Kind]int{admin.Invalid: http.StatusBadRequest, admin.NotFound: http.StatusNotFound, admin.Conflict: http.StatusConflict}

var _ caddy.AdminRouter = AdminAPI{}
