package caddymodule

import (
	"net/http"

	"github.com/gatehouse-idp/gatehouse/users"
)

// deleteUser removes a user for good (see admin.Service.DeleteUser).
var deleteUser = onUser(func(a *App, r *http.Request, _ userRequest, u users.User) (any, error) {
	ended, err := a.admin.DeleteUser(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return map[string]any{"username": u.Username, "sub": u.Subject, "sessions_ended": ended}, nil
})

// deleteClient removes a client registered at run time (with the CLI or
// dynamic registration); a client of the Caddyfile is removed there.
func deleteClient(a *App, w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ID string `json:"client_id"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	setAdminTarget(r, "client:"+req.ID)
	if err := a.admin.DeleteClient(r.Context(), req.ID); err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, map[string]string{"client_id": req.ID, "deleted": "true"})
	return nil
}
