package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/console"
)

// adminLines are the admin_action lines of the audit log.
func (e *env) adminLines() []map[string]string {
	var out []map[string]string
	sc := bufio.NewScanner(strings.NewReader(e.auditLog()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["event"] != "admin_action" {
			continue
		}
		line := map[string]string{}
		for k, v := range m {
			if s, ok := v.(string); ok {
				line[k] = s
			}
		}
		out = append(out, line)
	}
	return out
}

// wantAdminLine: the newest admin_action line names admin, target and
// the admin's address, and its reason says reasonHas.
func (e *env) wantAdminLine(admin, target, reasonHas string) {
	e.t.Helper()
	lines := e.adminLines()
	if len(lines) == 0 {
		e.t.Fatalf("no admin_action line; log:\n%s", e.auditLog())
	}
	l := lines[len(lines)-1]
	if l["admin"] != admin || l["target"] != target || !strings.Contains(l["reason"], reasonHas) || l["ip"] != "127.0.0.1" {
		e.t.Fatalf("last admin_action line %v, want admin %q target %q reason with %q from 127.0.0.1", l, admin, target, reasonHas)
	}
}

// adminBrowser signs root in at level 2 and returns the users page.
func (e *env) adminBrowser() (*browser, string) {
	e.t.Helper()
	b := newBrowser(e.t)
	var secret string
	resp, page := e.signIn(b, "/admin/users", "root", adminPassword, &secret)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Create a user") {
		e.t.Fatalf("admin sign-in ended at %s (%d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	if secret == "" {
		e.t.Fatal("level 2 reached without TOTP")
	}
	return b, page
}

func TestNonAdminGets403(t *testing.T) {
	e := newEnv(t, "")
	b := newBrowser(t)
	resp, page := e.signIn(b, "/admin/users", "bob", userPassword, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Not an administrator") {
		t.Fatalf("non-admin: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, `name="code"`) {
		t.Fatal("a non-admin was asked for a second factor")
	}
	e.wantAdminLine("bob", "console", "not in group admins")
	// A non-admin's POST does nothing either.
	resp, _ = b.post(e.issuer+"/admin/users", url.Values{"action": {"create"}, "username": {"mallory"}, "password": {"pw pw pw pw 1"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("non-admin POST: %d", resp.StatusCode)
	}
	if _, err := e.svc.FindUser(context.Background(), "mallory"); err == nil {
		t.Fatal("a non-admin created a user")
	}
}

func TestSignedOutIsSentToSignIn(t *testing.T) {
	e := newEnv(t, "")
	b := newBrowser(t)
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, p := range []string{"/admin", "/admin/users", "/admin/audit?event=x"} {
		resp, _ := b.get(e.issuer + p)
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s signed out: %d", p, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); !strings.Contains(loc, "/idp/login") && p != "/admin" {
			t.Fatalf("%s signed out goes to %s", p, loc)
		}
	}
	resp, page := b.post(e.issuer+"/admin/users", url.Values{"action": {"create"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Signed out") {
		t.Fatalf("signed-out POST: %d", resp.StatusCode)
	}
}

func TestAdminNeedsLevelAndRecentSignIn(t *testing.T) {
	e := newEnv(t, "")
	b, page := e.adminBrowser()
	token := csrf(t, page)

	// Without the CSRF token (or with another) nothing is done.
	for _, tok := range []string{"", "x" + token} {
		resp, page := b.post(e.issuer+"/admin/users", url.Values{"csrf": {tok}, "action": {"create"}, "username": {"carol"}, "password": {"carol password 1"}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "expired") {
			t.Fatalf("POST with csrf %q: %d", tok, resp.StatusCode)
		}
		e.wantAdminLine("root", "console", "no valid CSRF token")
	}
	if _, err := e.svc.FindUser(context.Background(), "carol"); err == nil {
		t.Fatal("a CSRF-less POST created a user")
	}

	// A sign-in older than max_age: a form is refused, a page steps up.
	e.clock.Advance(console.DefaultMaxAge + time.Minute)
	resp, page := b.post(e.issuer+"/admin/users", url.Values{"csrf": {token}, "action": {"create"}, "username": {"carol"}, "password": {"carol password 1"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Confirm it is you") {
		t.Fatalf("stale POST: %d\n%s", resp.StatusCode, page)
	}
	if _, err := e.svc.FindUser(context.Background(), "carol"); err == nil {
		t.Fatal("a stale session created a user")
	}
	resp, page = b.get(e.issuer + "/admin/users")
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("stale GET was not sent to sign in again: %d at %s", resp.StatusCode, resp.Request.URL)
	}
}

func TestLevelTheChainLacks(t *testing.T) {
	e := newEnv(t, "3")
	b := newBrowser(t)
	resp, page := e.signIn(b, "/admin/users", "root", adminPassword, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "does not have") {
		t.Fatalf("level 3 with a chain of 1 and 2: %d\n%s", resp.StatusCode, page)
	}
}
