package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/provider"
)

type sessionRow struct {
	SID, Username, Created, LastSeen, Expires, Modules, Clients, Device, IP string
	Current                                                                 bool
}

// sessionTable is a list of sessions with an "end" button on each.
type sessionTable struct {
	Base, CSRF string
	Rows       []sessionRow
	ShowUser   bool
}

func sessionRows(list []admin.SessionInfo) []sessionRow {
	out := make([]sessionRow, 0, len(list))
	for _, s := range list {
		out = append(out, sessionRow{SID: s.SID, Username: s.Username, Created: when(s.Created), LastSeen: when(s.LastSeen),
			Expires: when(s.Expires), Modules: strings.Join(s.Modules, ", "), Clients: strings.Join(s.Clients, ", "),
			Device: s.Device, IP: s.IP})
	}
	return out
}

// markCurrent marks the admin's own session, which has no "end" button
// (signing out is done on the account page).
func markCurrent(rows []sessionRow, sid string) []sessionRow {
	for i := range rows {
		rows[i].Current = rows[i].SID == sid
	}
	return rows
}

func (c *Console) sessionsPage(r *req) {
	who := strings.TrimSpace(r.URL.Query().Get("user"))
	list, err := c.cfg.Admin.ListSessions(r.Context(), who)
	if err != nil {
		c.refused(r, "listing sessions", err)
		return
	}
	rows := markCurrent(sessionRows(list), r.sid)
	more := len(rows) > maxRows
	if more {
		rows = rows[:maxRows]
	}
	c.render(r, http.StatusOK, "console_sessions.html", "Sessions", struct {
		User  string
		Table sessionTable
		More  bool
	}{who, sessionTable{Base: c.base, CSRF: r.csrf, Rows: rows, ShowUser: true}, more})
}

func (c *Console) sessionsAction(r *req, action string) (string, error) {
	if action != "end" {
		return "", &admin.Error{Kind: admin.Invalid, Msg: "unknown action"}
	}
	sid := r.PostForm.Get("sid")
	sub, err := c.cfg.Admin.EndSession(r.Context(), sid)
	r.record(c, "session:"+shortSID(sid), sub, "console end session", err)
	if err != nil {
		return "", err
	}
	return "Session ended.", nil
}

// shortSID names a session in the audit trail without handing out its
// full id.
func shortSID(sid string) string {
	if len(sid) > 8 {
		return sid[:8] + "…"
	}
	return sid
}

type clientRow struct {
	provider.Client
	Kind      string
	Redirects string
}

func (c *Console) clientsPage(r *req) {
	c.showClients(r, nil, "")
}

// showClients renders the clients page; created and secret, when set,
// are a client just created and its secret, shown this once.
func (c *Console) showClients(r *req, created *provider.Client, secret string) {
	list, err := c.cfg.Admin.ListClients(r.Context())
	if err != nil {
		c.serverError(r.w, "listing clients", err)
		return
	}
	rows := make([]clientRow, 0, len(list))
	for _, cl := range list {
		kind := "added at run time"
		switch {
		case c.cfg.Admin.IsStatic(cl.ID):
			kind = "configuration"
		case !cl.RegisteredAt.IsZero():
			kind = "registered itself"
		}
		rows = append(rows, clientRow{Client: cl, Kind: kind, Redirects: strings.Join(cl.RedirectURIs, " ")})
	}
	c.render(r, http.StatusOK, "console_clients.html", "Clients", struct {
		Rows    []clientRow
		Created *provider.Client
		Secret  string
	}{rows, created, secret})
}

func (c *Console) clientsAction(r *req, action string) (string, error) {
	f := r.PostForm
	id := strings.TrimSpace(f.Get("client_id"))
	switch action {
	case "create":
		cl := provider.Client{ID: id, Name: strings.TrimSpace(f.Get("name")), Public: f.Get("public") != "",
			RedirectURIs: strings.Fields(f.Get("redirect_uris")), PostLogoutRedirectURIs: strings.Fields(f.Get("post_logout_redirect_uris"))}
		cl.FirstParty = f.Get("first_party") != ""
		if cl.Public {
			cl.TokenEndpointAuthMethod = provider.AuthNone
		}
		got, secret, err := c.cfg.Admin.AddClient(r.Context(), cl)
		r.record(c, "client:"+id, "", "console create client", err)
		if err != nil {
			return "", err
		}
		// The secret is on this answer only: it is not stored.
		c.showClients(r, got, secret)
		return "", nil
	case "delete":
		err := c.cfg.Admin.DeleteClient(r.Context(), id)
		r.record(c, "client:"+id, "", "console delete client", err)
		if err != nil {
			return "", err
		}
		return "Client " + id + " deleted.", nil
	}
	return "", &admin.Error{Kind: admin.Invalid, Msg: "unknown action"}
}

type banRow struct {
	admin.BanInfo
	Until string
}

func (c *Console) bansPage(r *req) {
	list, err := c.cfg.Admin.Bans(r.Context())
	if err != nil {
		c.serverError(r.w, "listing bans", err)
		return
	}
	rows := make([]banRow, 0, len(list))
	for _, b := range list {
		rows = append(rows, banRow{BanInfo: b, Until: when(b.Until)})
	}
	c.render(r, http.StatusOK, "console_bans.html", "Bans", struct {
		Rows    []banRow
		Default string
	}{rows, admin.DefaultBan.String()})
}

// maxBan bounds a ban set in the console.
const maxBan = 365 * 24 * time.Hour

func (c *Console) bansAction(r *req, action string) (string, error) {
	ctx := r.Context()
	f := r.PostForm
	t := admin.BanTarget{Key: strings.TrimSpace(f.Get("key"))}
	if v := strings.TrimSpace(f.Get("value")); v != "" {
		switch f.Get("kind") {
		case "user":
			t.User = v
		case "ip":
			t.IP = v
		case "client":
			t.Client = v
		default:
			return "", &admin.Error{Kind: admin.Invalid, Msg: "choose a user, an address or a client"}
		}
	}
	k, err := c.cfg.Admin.BanKey(ctx, t)
	if err != nil {
		r.record(c, t.Key+t.User+t.IP+t.Client, "", "console "+action+" ban", err)
		return "", err
	}
	switch action {
	case "add":
		var d time.Duration
		if s := strings.TrimSpace(f.Get("duration")); s != "" {
			if d, err = time.ParseDuration(s); err != nil || d <= 0 || d > maxBan {
				err = &admin.Error{Kind: admin.Invalid, Msg: "the duration is like 30m, 2h or 48h, at most a year"}
				r.record(c, k.String(), "", "console add ban", err)
				return "", err
			}
		}
		b, err := c.cfg.Admin.Ban(ctx, r.admin.Username, k, d)
		r.record(c, k.String(), "", "console add ban", err)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s banned until %s.", b.Key, when(b.Until)), nil
	case "lift":
		was, err := c.cfg.Admin.Lift(ctx, r.admin.Username, k)
		r.record(c, k.String(), "", "console lift ban", err)
		if err != nil {
			return "", err
		}
		if !was {
			return k.String() + " was not banned.", nil
		}
		return "Ban of " + k.String() + " lifted.", nil
	}
	err = &admin.Error{Kind: admin.Invalid, Msg: "unknown action"}
	r.record(c, k.String(), "", "console "+action+" ban", err)
	return "", err
}

func (c *Console) keysPage(r *req) {
	c.render(r, http.StatusOK, "console_keys.html", "Signing keys", nil)
}

func (c *Console) keysAction(r *req, action string) (string, error) {
	if action != "rotate" {
		return "", &admin.Error{Kind: admin.Invalid, Msg: "unknown action"}
	}
	kid, err := c.cfg.Admin.RotateKeys(r.Context())
	r.record(c, "signing-keys", "", "console rotate keys", err)
	if err != nil {
		return "", err
	}
	return "A new signing key is active: " + kid + ". The previous keys stay published until the tokens they signed have expired.", nil
}

func (c *Console) auditPage(r *req) {
	q := r.URL.Query()
	f := Filter{Event: strings.TrimSpace(q.Get("event")), User: strings.TrimSpace(q.Get("user")),
		Client: strings.TrimSpace(q.Get("client")), IP: strings.TrimSpace(q.Get("ip"))}
	var bad []string
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := strings.TrimSpace(q.Get(t.name))
		if v == "" {
			continue
		}
		tm, err := parseWhen(v)
		if err != nil {
			bad = append(bad, t.name)
			continue
		}
		*t.dst = tm
	}
	entries, more := c.cfg.Recent.Search(f, maxRows)
	rows := make([]auditRow, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, auditRow{Entry: e, When: when(e.At), Until: when(e.Until)})
	}
	status, msg := http.StatusOK, ""
	if len(bad) > 0 {
		status, msg = http.StatusBadRequest, "Times are like 2026-01-31 14:00 or 2026-01-31T14:00:00Z (UTC): check "+strings.Join(bad, " and ")+"."
	}
	c.render(r, status, "console_audit.html", "Audit trail", struct {
		F       map[string]string
		Rows    []auditRow
		More    bool
		Problem string
	}{map[string]string{"event": f.Event, "user": f.User, "client": f.Client, "ip": f.IP,
		"since": q.Get("since"), "until": q.Get("until")}, rows, more, msg})
}

type auditRow struct {
	Entry
	When, Until string
}

// parseWhen reads a time typed in the audit search (UTC unless it says).
func parseWhen(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}
