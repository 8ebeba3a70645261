package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

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
	acts := a.chain.Actions()
	if acts == nil {
		acts = []chain.ModuleAction{}
	}
	writeAdminJSON(w, http.StatusOK, acts)
	return nil
}

func runModuleAction(a *App, w http.ResponseWriter, r *http.Request) error {
	var req moduleActionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	u, err := findUser(a, r, req.Username)
	if err != nil {
		return err
	}
	setAdminTarget(r, "user:"+u.Username)
	res, err := a.chain.Act(r.Context(), req.Module, req.Action, u)
	if errors.Is(err, chain.ErrNoAction) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: err.Error()}
	} else if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, moduleActionResponse{Username: u.Username, Module: req.Module, Action: req.Action, ActionResult: res})
	return nil
}

// resetTOTP runs "reset" on every totp module of the chain; the answer
// keeps its old shape (username, devices_forgotten).
var resetTOTP = onUser(func(a *App, r *http.Request, _ userRequest, u users.User) (any, error) {
	mods := a.chain.ModulesOfKind("totp")
	if len(mods) == 0 {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "the chain has no totp module"}
	}
	forgotten := 0
	for _, m := range mods {
		res, err := a.chain.Act(r.Context(), m, "reset", u)
		if err != nil {
			return nil, err
		}
		forgotten += res.DevicesForgotten
	}
	return map[string]any{"username": u.Username, "devices_forgotten": forgotten}, nil
})
