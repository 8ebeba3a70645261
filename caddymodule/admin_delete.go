package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/users"
)

// deleteUser removes a user for good: disabled first (no new sign-in
// can start), every session ended (back-channel logout sent), every
// token, consent and refresh family taken back, what the chain's modules
// keep of them (TOTP, passkeys, trusted browsers) removed, then the
// account itself.
var deleteUser = onUser(func(a *App, r *http.Request, _ userRequest, u users.User) (any, error) {
	ctx := r.Context()
	if _, err := a.users.Update(ctx, u.Subject, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
		return nil, err
	}
	ended, err := a.logout.EndAll(ctx, u.Subject, logout.Deleted)
	if err != nil {
		return nil, err
	}
	if err := a.provider.ForgetUser(ctx, u.Subject); err != nil {
		return nil, err
	}
	if err := a.chain.ForgetUser(ctx, u.Subject); err != nil {
		return nil, err
	}
	if err := a.users.Delete(ctx, u.Subject); err != nil {
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
	ctx := r.Context()
	if _, err := a.clients.Get(ctx, req.ID); errors.Is(err, provider.ErrUnknownClient) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Message: "no client " + req.ID}
	} else if err != nil {
		return err
	}
	if a.clients.IsStatic(req.ID) {
		return badRequest("client %s is configured in the Caddyfile: remove it there and reload", req.ID)
	}
	if err := a.clients.Delete(ctx, req.ID); err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, map[string]string{"client_id": req.ID, "deleted": "true"})
	return nil
}
