package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// banRequest names a key: key ("user:<sub>", "ip:<addr>",
// "client:<id>"), or user (a username), ip or client.
type banRequest struct {
	Key      string         `json:"key,omitempty"`
	User     string         `json:"user,omitempty"`
	IP       string         `json:"ip,omitempty"`
	Client   string         `json:"client,omitempty"`
	Duration caddy.Duration `json:"duration,omitempty"`
}

func (a *App) banKey(r *http.Request, req banRequest) (regulate.Key, error) {
	return a.admin.BanKey(r.Context(), admin.BanTarget{Key: req.Key, User: req.User, IP: req.IP, Client: req.Client})
}

func listBans(a *App, w http.ResponseWriter, r *http.Request) error {
	out, err := a.admin.Bans(r.Context())
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, out)
	return nil
}

func addBan(a *App, w http.ResponseWriter, r *http.Request) error {
	var req banRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	k, err := a.banKey(r, req)
	if err != nil {
		return err
	}
	setAdminTarget(r, k.String())
	ban, err := a.admin.Ban(r.Context(), r.RemoteAddr, k, time.Duration(req.Duration))
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusCreated, ban)
	return nil
}

func liftBan(a *App, w http.ResponseWriter, r *http.Request) error {
	var req banRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	k, err := a.banKey(r, req)
	if err != nil {
		return err
	}
	setAdminTarget(r, k.String())
	was, err := a.admin.Lift(r.Context(), r.RemoteAddr, k)
	if err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, map[string]any{"key": k.String(), "was_banned": was})
	return nil
}

type adminTargetKey struct{}

// adminTarget is what an admin action was on: a name, and the subject
// when it is an account.
type adminTarget struct{ name, subject string }

// setAdminTarget names what an admin action was on, for the audit line
// the admin API writes after it.
func setAdminTarget(r *http.Request, target string) {
	if p, ok := r.Context().Value(adminTargetKey{}).(*adminTarget); ok {
		p.name = target
	}
}

// setAdminSubject names the account an admin action was on, so that its
// audit line (and the Security Event Tokens made from it) carry the
// subject, also once the account is deleted.
func setAdminSubject(r *http.Request, sub string) {
	if p, ok := r.Context().Value(adminTargetKey{}).(*adminTarget); ok {
		p.subject = sub
	}
}
