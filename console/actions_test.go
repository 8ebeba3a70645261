package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/audit"
)

// act posts one console form with the page's CSRF token and follows
// the redirect back to the page.
func (e *env) act(b *browser, token, path string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	form.Set("csrf", token)
	return b.post(e.issuer+path, form)
}

func TestConsoleUserActions(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	b, page := e.adminBrowser()
	token := csrf(t, page)

	// Create: the note is on the page, the user exists, the line names root.
	resp, page := e.act(b, token, "/admin/users", url.Values{"action": {"create"}, "username": {"carol"},
		"password": {"carol password 1"}, "name": {`<b onmouseover="x">Carol</b>`}, "groups": {"staff, ops"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "User carol created.") {
		t.Fatalf("create: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, `<b onmouseover`) || !strings.Contains(page, "&lt;b onmouseover=") {
		t.Fatal("a user's name is not escaped on the users page")
	}
	carol, err := e.svc.FindUser(ctx, "carol")
	if err != nil || strings.Join(carol.Groups, ",") != "staff,ops" {
		t.Fatalf("carol: %v %v", carol, err)
	}
	e.wantAdminLine("root", "user:carol", audit.ConsoleUserCreated)
	// The same again is refused, and audited as refused.
	resp, _ = e.act(b, token, "/admin/users", url.Values{"action": {"create"}, "username": {"carol"}, "password": {"carol password 1"}})
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second create: %d", resp.StatusCode)
	}
	e.wantAdminLine("root", "user:carol", "refused")

	// Search.
	_, page = b.get(e.issuer + "/admin/users?q=OPS")
	if !strings.Contains(page, ">carol</a>") || strings.Contains(page, ">bob</a>") {
		t.Fatalf("search by group:\n%s", page)
	}

	// Bob signs in; disabling him ends his session.
	bob := newBrowser(t)
	if resp, _ := e.signIn(bob, "/account", "bob", userPassword, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's sign-in: %d", resp.StatusCode)
	}
	resp, page = e.act(b, token, "/admin/user", url.Values{"action": {"disable"}, "username": {"bob"}})
	if !strings.Contains(page, "User bob disabled.") || !strings.Contains(resp.Request.URL.RawQuery, "name=bob") {
		t.Fatalf("disable: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	e.wantAdminLine("root", "user:bob", audit.ConsoleUserDisabled)
	if u, _ := e.svc.FindUser(ctx, "bob"); !u.Disabled {
		t.Fatal("bob is not disabled")
	}
	if list, _ := e.svc.ListSessions(ctx, "bob"); len(list) != 0 {
		t.Fatalf("bob's sessions after disabling: %d", len(list))
	}
	e.act(b, token, "/admin/user", url.Values{"action": {"enable"}, "username": {"bob"}})
	if u, _ := e.svc.FindUser(ctx, "bob"); u.Disabled {
		t.Fatal("bob is still disabled")
	}
	e.wantAdminLine("root", "user:bob", audit.ConsoleUserEnabled)

	// Groups: a bad name is refused, good ones saved.
	if resp, _ := e.act(b, token, "/admin/user", url.Values{"action": {"groups"}, "username": {"carol"}, "groups": {"ok,\x00bad"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("groups with a NUL: %d", resp.StatusCode)
	}
	e.act(b, token, "/admin/user", url.Values{"action": {"groups"}, "username": {"carol"}, "groups": {"admins staff"}})
	if u, _ := e.svc.FindUser(ctx, "carol"); strings.Join(u.Groups, ",") != "admins,staff" {
		t.Fatalf("carol's groups: %v", u.Groups)
	}
	e.wantAdminLine("root", "user:carol", audit.ConsoleUserChanged)

	// An admin cannot lock themselves out by a slip.
	for _, f := range []url.Values{{"action": {"disable"}}, {"action": {"delete"}, "confirm": {"root"}}, {"action": {"groups"}, "groups": {"staff"}}} {
		f.Set("username", "root")
		if resp, _ := e.act(b, token, "/admin/user", f); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("root %s on themselves: %d", f.Get("action"), resp.StatusCode)
		}
		e.wantAdminLine("root", "user:root", "refused: you cannot")
	}
	if u, err := e.svc.FindUser(ctx, "root"); err != nil || u.Disabled || !slices.Contains(u.Groups, "admins") {
		t.Fatalf("root after the refused changes: %+v %v", u, err)
	}
	if _, page := e.act(b, token, "/admin/user", url.Values{"action": {"groups"}, "username": {"root"}, "groups": {"admins ops"}}); !strings.Contains(page, "Groups of root saved.") {
		t.Fatal("root cannot add a group to themselves")
	}

	// Reset TOTP through the module's admin action (root's own).
	_, page = b.get(e.issuer + "/admin/user?name=root")
	if !regexp.MustCompile(`name="module" value="totp"><input type="hidden" name="module_action" value="reset">`).MatchString(page) {
		t.Fatalf("no totp reset on the user page:\n%s", page)
	}
	resp, page = e.act(b, token, "/admin/user", url.Values{"action": {"module"}, "username": {"carol"}, "module": {"totp"}, "module_action": {"reset"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("totp reset: %d\n%s", resp.StatusCode, page)
	}
	e.wantAdminLine("root", "user:carol", "console module totp reset user")
	resp, _ = e.act(b, token, "/admin/user", url.Values{"action": {"module"}, "username": {"carol"}, "module": {"totp"}, "module_action": {"nope"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown module action: %d", resp.StatusCode)
	}

	// Delete: the username must be typed.
	resp, _ = e.act(b, token, "/admin/user", url.Values{"action": {"delete"}, "username": {"carol"}, "confirm": {"caro"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("delete without confirmation: %d", resp.StatusCode)
	}
	if _, err := e.svc.FindUser(ctx, "carol"); err != nil {
		t.Fatal("deleted without confirmation")
	}
	resp, page = e.act(b, token, "/admin/user", url.Values{"action": {"delete"}, "username": {"carol"}, "confirm": {"carol"}})
	if !strings.Contains(page, "User carol deleted") || resp.Request.URL.Path != "/idp/admin/users" {
		t.Fatalf("delete: %d %s", resp.StatusCode, resp.Request.URL)
	}
	if _, err := e.svc.FindUser(ctx, "carol"); err == nil {
		t.Fatal("carol still exists")
	}
	e.wantAdminLine("root", "user:carol", audit.ConsoleUserDeleted)

	// A note cannot be forged in a link.
	_, page = b.get(e.issuer + "/admin/users?note=Your+account+is+compromised")
	if strings.Contains(page, "compromised") {
		t.Fatal("a note from the URL is shown")
	}
}

func TestConsoleSessionsClientsBansKeys(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	b, page := e.adminBrowser()
	token := csrf(t, page)

	// End one of bob's sessions from the sessions page.
	bob := newBrowser(t)
	e.signIn(bob, "/account", "bob", userPassword, nil)
	_, page = b.get(e.issuer + "/admin/sessions")
	list, _ := e.svc.ListSessions(ctx, "bob")
	if len(list) != 1 || !strings.Contains(page, list[0].SID) {
		t.Fatalf("bob's session not listed (%d):\n%s", len(list), page)
	}
	if strings.Count(page, `value="end"`) != 1 {
		t.Fatal("the admin's own session has an end button, or bob's has none")
	}
	resp, page := e.act(b, token, "/admin/sessions", url.Values{"action": {"end"}, "sid": {list[0].SID}})
	if !strings.Contains(page, "Session ended.") {
		t.Fatalf("end session: %d", resp.StatusCode)
	}
	if list, _ := e.svc.ListSessions(ctx, "bob"); len(list) != 0 {
		t.Fatal("bob's session still live")
	}
	if resp, _ := bob.get(e.issuer + "/account"); strings.Contains(resp.Request.URL.Path, "/account") && resp.StatusCode == http.StatusOK {
		t.Fatal("bob's browser is still signed in")
	}
	e.wantAdminLine("root", "session:"+list[0].SID[:8]+"…", "console end session")
	resp, _ = e.act(b, token, "/admin/sessions", url.Values{"action": {"end"}, "sid": {list[0].SID}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("ending an ended session: %d", resp.StatusCode)
	}

	// Clients: the secret is shown once.
	resp, page = e.act(b, token, "/admin/clients", url.Values{"action": {"create"}, "client_id": {"wiki"}, "name": {"Wiki"},
		"redirect_uris": {"https://wiki.example/cb"}})
	m := regexp.MustCompile(`<code id="secret" class="secret">([^<]+)</code>`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("create client: %d\n%s", resp.StatusCode, page)
	}
	if _, err := e.svc.Clients.Get(ctx, "wiki"); err != nil {
		t.Fatal(err)
	}
	_, page = b.get(e.issuer + "/admin/clients")
	if strings.Contains(page, m[1]) || !strings.Contains(page, "<code>wiki</code>") {
		t.Fatal("the secret is shown again, or the client is not listed")
	}
	e.wantAdminLine("root", "client:wiki", "console create client")
	resp, _ = e.act(b, token, "/admin/clients", url.Values{"action": {"create"}, "client_id": {"bad"}, "redirect_uris": {"/relative"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("client with a relative redirect URI: %d", resp.StatusCode)
	}
	resp, _ = e.act(b, token, "/admin/clients", url.Values{"action": {"delete"}, "client_id": {"static"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("deleting a configured client: %d", resp.StatusCode)
	}
	e.act(b, token, "/admin/clients", url.Values{"action": {"delete"}, "client_id": {"wiki"}})
	if _, err := e.svc.Clients.Get(ctx, "wiki"); err == nil {
		t.Fatal("wiki not deleted")
	}
	e.wantAdminLine("root", "client:wiki", "console delete client")

	// Bans: add, listed, lift.
	resp, page = e.act(b, token, "/admin/bans", url.Values{"action": {"add"}, "kind": {"ip"}, "value": {"203.0.113.7"}, "duration": {"2h"}})
	if !strings.Contains(page, "ip:203.0.113.7 banned until") || !strings.Contains(page, `value="lift"`) {
		t.Fatalf("ban: %d\n%s", resp.StatusCode, page)
	}
	e.wantAdminLine("root", "ip:203.0.113.7", "console add ban")
	if !strings.Contains(e.auditLog(), `"event":"banned"`) {
		t.Fatal("no banned line")
	}
	resp, _ = e.act(b, token, "/admin/bans", url.Values{"action": {"add"}, "kind": {"ip"}, "value": {"203.0.113.8"}, "duration": {"-5m"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("negative duration: %d", resp.StatusCode)
	}
	_, page = e.act(b, token, "/admin/bans", url.Values{"action": {"lift"}, "key": {"ip:203.0.113.7"}})
	if !strings.Contains(page, "Ban of ip:203.0.113.7 lifted.") {
		t.Fatalf("lift:\n%s", page)
	}
	if bans, _ := e.svc.Bans(ctx); len(bans) != 0 {
		t.Fatalf("bans after lifting: %v", bans)
	}
	e.wantAdminLine("root", "ip:203.0.113.7", "console lift ban")
	if !strings.Contains(e.auditLog(), `"event":"ban_lifted"`) || !strings.Contains(e.auditLog(), `"admin":"root"`) {
		t.Fatal("no ban_lifted line naming root")
	}

	// Keys.
	_, page = e.act(b, token, "/admin/keys", url.Values{"action": {"rotate"}})
	if !strings.Contains(page, "A new signing key is active") {
		t.Fatalf("rotate:\n%s", page)
	}
	e.wantAdminLine("root", "signing-keys", "console rotate keys")

	// Unknown actions and methods; what an attacker types is not written
	// to the audit trail as it came.
	for _, a := range []string{"<script>", strings.Repeat("x", 5000), "END"} {
		resp, _ := e.act(b, token, "/admin/users", url.Values{"action": {a}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("action %.20q: %d", a, resp.StatusCode)
		}
		e.wantAdminLine("root", "console", "console POST /idp/admin/users (refused: unknown action)")
	}
	if strings.Contains(e.auditLog(), "xxxxxxxxxx") || strings.Contains(e.auditLog(), "script") {
		t.Fatal("a typed action reached the audit log")
	}
	resp, _ = e.act(b, token, "/admin/user", url.Values{"action": {"module"}, "username": {"bob"}, "module": {strings.Repeat("m", 100)}, "module_action": {"reset"}})
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(e.auditLog(), "mmmmmmmmmm") {
		t.Fatalf("a long module name: %d", resp.StatusCode)
	}
	if resp, _ := e.act(b, token, "/admin/keys", url.Values{"action": {"drop"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown action: %d", resp.StatusCode)
	}
	if resp, _ := e.act(b, token, "/admin/audit", url.Values{}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST to the audit page: %d", resp.StatusCode)
	}
}

func TestConsoleAuditSearch(t *testing.T) {
	e := newEnv(t, "")
	b, page := e.adminBrowser()
	token := csrf(t, page)
	// A failed sign-in and an action to find.
	other := newBrowser(t)
	e.signIn(other, "/account", "bob", "wrong password 1", nil)
	e.act(b, token, "/admin/users", url.Values{"action": {"create"}, "username": {"dave"}, "password": {"dave password 1"}})

	_, page = b.get(e.issuer + "/admin/audit?event=login_failed")
	if !strings.Contains(page, "<td>login_failed</td>") || strings.Contains(page, "<td>admin_action</td>") {
		t.Fatalf("search by event:\n%s", page)
	}
	_, page = b.get(e.issuer + "/admin/audit?user=root&event=admin_action")
	if !strings.Contains(page, "on user:dave") || strings.Contains(page, "<td>login_failed</td>") {
		t.Fatalf("search by admin:\n%s", page)
	}
	_, page = b.get(e.issuer + "/admin/audit?ip=198.51.100.1")
	if strings.Contains(page, "<td>login_failed</td>") {
		t.Fatal("search by another address found events")
	}
	_, page = b.get(e.issuer + "/admin/audit?since=2999-01-01")
	if strings.Contains(page, "<td>login_") {
		t.Fatal("events from the future")
	}
	resp, page := b.get(e.issuer + "/admin/audit?since=yesterday")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "check since") {
		t.Fatalf("bad time: %d", resp.StatusCode)
	}
}
