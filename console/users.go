package console

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// maxRows bounds the rows of a list page; a search narrows it.
const maxRows = 200

type userRow struct {
	Username, Name, Email, Groups string
	Disabled, Inactive            bool
	Source                        string // "local", or the user source (LDAP) it was imported from
}

func (c *Console) usersPage(r *req) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	list, err := c.cfg.Admin.ListUsers(r.Context())
	if err != nil {
		c.serverError(r.w, "listing users", err)
		return
	}
	slices.SortFunc(list, func(a, b users.User) int { return strings.Compare(a.Username, b.Username) })
	var rows []userRow
	more := false
	for _, u := range list {
		if q != "" && !matchesUser(u, q) {
			continue
		}
		if len(rows) == maxRows {
			more = true
			break
		}
		source := "local"
		if u.Federation != nil {
			source = u.Federation.Source
		}
		rows = append(rows, userRow{Username: u.Username, Name: u.Name, Email: u.Email,
			Groups: strings.Join(u.Groups, ", "), Disabled: u.Disabled, Inactive: u.Inactive, Source: source})
	}
	c.render(r, http.StatusOK, "console_users.html", "Users", struct {
		Q     string
		Rows  []userRow
		More  bool
		Total int
	}{q, rows, more, len(list)})
}

// matchesUser: q is in the username, the name, the address or a group.
func matchesUser(u users.User, q string) bool {
	q = strings.ToLower(q)
	for _, v := range append([]string{u.Username, u.Name, u.Email}, u.Groups...) {
		if strings.Contains(strings.ToLower(v), q) {
			return true
		}
	}
	return false
}

// splitGroups reads a list of groups typed with commas or spaces.
func splitGroups(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

func (c *Console) usersAction(r *req, action string) (string, error) {
	if action != "create" {
		return "", &admin.Error{Kind: admin.Invalid, Msg: "unknown action"}
	}
	f := r.PostForm
	name := strings.TrimSpace(f.Get("username"))
	u, err := c.cfg.Admin.CreateUser(r.Context(), users.User{Username: name, Email: strings.TrimSpace(f.Get("email")),
		EmailVerified: f.Get("email_verified") != "", Name: strings.TrimSpace(f.Get("name")), Groups: splitGroups(f.Get("groups"))},
		f.Get("password"))
	r.record(c, "user:"+name, u.Subject, audit.ConsoleUserCreated, err)
	if err != nil {
		return "", err
	}
	return "User " + u.Username + " created.", nil
}

type userView struct {
	users.User
	GroupList string
	Created   string
	Sessions  sessionTable
	Actions   []chain.ModuleAction
}

func (c *Console) userPage(r *req) {
	u, err := c.cfg.Admin.FindUser(r.Context(), r.URL.Query().Get("name"))
	if err != nil {
		c.refused(r, "finding user", err)
		return
	}
	sess, err := c.cfg.Admin.ListSessions(r.Context(), u.Username)
	if err != nil {
		c.serverError(r.w, "listing sessions", err)
		return
	}
	c.render(r, http.StatusOK, "console_user.html", "User "+u.Username, userView{User: u.Public(),
		GroupList: strings.Join(u.Groups, " "), Created: when(u.CreatedAt), Sessions: sessionTable{Base: c.base, CSRF: r.csrf, Rows: markCurrent(sessionRows(sess), r.sid)},
		Actions: c.cfg.Admin.ModuleActions()})
}

// refused answers a GET whose lookup failed.
func (c *Console) refused(r *req, what string, err error) {
	if e, ok := err.(*admin.Error); ok {
		c.errorPage(r.w, refusedStatus[e.Kind], "Not found", e.Msg)
		return
	}
	c.serverError(r.w, what, err)
}

func (c *Console) userAction(r *req, action string) (string, error) {
	ctx := r.Context()
	u, err := c.cfg.Admin.FindUser(ctx, r.PostForm.Get("username"))
	if err != nil {
		r.record(c, "user:"+r.PostForm.Get("username"), "", "console "+action+" user", err)
		return "", err
	}
	if u.Subject == r.admin.Subject && (action == "disable" || action == "delete" ||
		action == "groups" && !slices.Contains(splitGroups(r.PostForm.Get("groups")), c.cfg.Group)) {
		// An admin does not lock themselves out by a slip: another
		// admin (or the CLI) does it.
		err := &admin.Error{Kind: admin.Invalid, Msg: "you cannot disable or delete your own account, or leave the " + c.cfg.Group + " group, here"}
		r.record(c, "user:"+u.Username, u.Subject, "console "+action+" user", err)
		return "", err
	}
	var note string
	what := "console " + action + " user"
	switch action {
	case "disable", "enable":
		what = audit.ConsoleUserEnabled
		if action == "disable" {
			what = audit.ConsoleUserDisabled
		}
		_, err = c.cfg.Admin.SetDisabled(ctx, u, action == "disable")
		note = "User " + u.Username + " " + action + "d."
		if action == "disable" {
			note += " Their sessions have ended."
		}
	case "groups":
		what = audit.ConsoleUserChanged
		_, err = c.cfg.Admin.SetGroups(ctx, u, splitGroups(r.PostForm.Get("groups")))
		note = "Groups of " + u.Username + " saved."
	case "password":
		_, err = c.cfg.Admin.SetPassword(ctx, r.admin.Username, u, r.PostForm.Get("password"))
		note = "New password set for " + u.Username + "."
	case "module":
		mod, name := r.PostForm.Get("module"), r.PostForm.Get("module_action")
		if len(mod) > 64 || len(name) > 64 {
			err = &admin.Error{Kind: admin.Invalid, Msg: "unknown module action"}
			break
		}
		what = "console module " + mod + " " + name + " user"
		var res chain.ActionResult
		res, err = c.cfg.Admin.Act(ctx, u, mod, name)
		note = res.Message
		if note == "" {
			note = "Done: " + name + " (" + mod + ") for " + u.Username + "."
		}
	case "forget":
		var n int
		n, err = c.cfg.Admin.ForgetDevices(ctx, u)
		note = fmt.Sprintf("%d trusted browsers of %s forgotten.", n, u.Username)
	case "end-sessions":
		var n int
		n, err = c.cfg.Admin.EndSessions(ctx, u)
		note = fmt.Sprintf("%d sessions of %s ended.", n, u.Username)
	case "delete":
		if r.PostForm.Get("confirm") != u.Username {
			err = &admin.Error{Kind: admin.Invalid, Msg: "type the username to confirm the deletion"}
			break
		}
		var n int
		n, err = c.cfg.Admin.DeleteUser(ctx, u)
		if err == nil {
			r.record(c, "user:"+u.Username, u.Subject, audit.ConsoleUserDeleted, nil)
			c.redirect(r, "/users", fmt.Sprintf("User %s deleted; %d sessions ended.", u.Username, n))
			return "", nil
		}
	default:
		err = &admin.Error{Kind: admin.Invalid, Msg: "unknown action"}
	}
	r.record(c, "user:"+u.Username, u.Subject, what, err)
	return note, err
}
