package caddymodule

import (
	"net/http"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// The chain modules' admin commands (chain.AdminActions), listed and run
// without knowing their kinds: GET /gatehouse/modules/actions, and POST
// /gatehouse/users/module-action {username, module, action}.
// /gatehouse/users/reset-totp is the "reset" action of every totp module.

type moduleActionRequest struct {
	Username string `json:"username"`
	Module   string `json:"module"`
	Action   string `json:"action"`
}

// moduleActionResponse is what a module action did.
type moduleActionResponse struct {
	Username string `json:"username"`
	Module   string `json:"module"`
	Action   string `json:"action"`
	chain.ActionResult
}

func listModuleActions(a *App, w http.ResponseWriter, _ *http.Request) error {
	writeAdminJSON(w, http.StatusOK, a.admin.ModuleActions())
	return nil
}

func runModuleAction(a *App, w http.ResponseWriter, r *http.Request) error {
	var req moduleActionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	u, err := a.admin.FindUser(r.Context(), req.Username)
	if err != nil {
		return err
	}
	setAdminTarget(r, "user:"+u.Username)
	setAdminSubject(r, u.Subject)
	res, err := a.admin.Act(r.Context(), u, req.Module, req.Action)
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, moduleActionResponse{Username: u.Username, Module: req.Module, Action: req.Action, ActionResult: res})
	return nil
}

// resetTOTP runs "reset" on every totp module of the chain; the answer
// keeps its old shape (username, devices_forgotten).
var resetTOTP = onUser(func(a *App, r *http.Request, _ userRequest, u users.User) (any, error) {
	forgotten, err := a.admin.ResetTOTP(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return map[string]any{"username": u.Username, "devices_forgotten": forgotten}, nil
})
