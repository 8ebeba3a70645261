package caddymodule

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/audit"
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
	n := 0
	for _, v := range []string{req.Key, req.User, req.IP, req.Client} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return regulate.Key{}, badRequest("name one of key, user, ip or client")
	}
	switch {
	case req.User != "":
		u, err := findUser(a, r, req.User)
		if err != nil {
			return regulate.Key{}, err
		}
		return regulate.User(u.Subject), nil
	case req.IP != "":
		return regulate.IP(req.IP), nil
	case req.Client != "":
		return regulate.Client(req.Client), nil
	}
	k, err := regulate.ParseKey(req.Key)
	if err != nil {
		return k, badRequest("%v", err)
	}
	return k, nil
}

// banInfo is a ban as the admin API shows it.
type banInfo struct {
	Key    string    `json:"key"`
	User   string    `json:"user,omitempty"`
	Until  time.Time `json:"until"`
	Bans   int       `json:"bans"`
	Manual bool      `json:"manual,omitempty"`
}

func (a *App) banInfo(ctx context.Context, b regulate.Ban) banInfo {
	bi := banInfo{Key: b.Key.String(), Until: b.Until, Bans: b.Bans, Manual: b.Manual}
	if b.Key.Kind == regulate.KindUser && !strings.HasPrefix(b.Key.Value, "name-") {
		if u, err := a.users.Get(ctx, b.Key.Value); err == nil {
			bi.User = u.Username
		}
	}
	return bi
}

func listBans(a *App, w http.ResponseWriter, r *http.Request) error {
	bans, err := a.regulate.Bans(r.Context())
	if err != nil {
		return err
	}
	out := []banInfo{}
	for _, b := range bans {
		out = append(out, a.banInfo(r.Context(), b))
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
	d := time.Duration(req.Duration)
	if d == 0 {
		d = time.Hour
	}
	ban, err := a.regulate.BanKey(r.Context(), k, d)
	if err != nil {
		return badRequest("%v", err)
	}
	setAdminTarget(r, k.String())
	a.audit.Record(r.Context(), audit.Event{Event: audit.Banned, Key: k.String(), Until: ban.Until, Reason: "admin", Admin: r.RemoteAddr})
	writeAdminJSON(w, http.StatusCreated, a.banInfo(r.Context(), ban))
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
	was, err := a.regulate.Lift(r.Context(), k)
	if err != nil {
		return err
	}
	setAdminTarget(r, k.String())
	a.audit.Record(r.Context(), audit.Event{Event: audit.BanLifted, Key: k.String(), Admin: r.RemoteAddr})
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
