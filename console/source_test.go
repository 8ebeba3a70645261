package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/users"
)

// An account imported from a user source (LDAP) shows its source; the
// console offers no form for what the source owns, and a forged one is
// refused with the reason.
func TestConsoleDirectoryAccount(t *testing.T) {
	e := newEnv(t, "")
	// The record an LDAP sign-in leaves (users/ldap tests import real ones).
	if _, err := e.users.Create(context.Background(), users.User{Username: "dana", Email: "dana@acme.test", Groups: []string{"staff"},
		Federation: &users.Federation{Source: "corp-ldap", ID: "dn:uid=dana,ou=people,dc=acme"}}, ""); err != nil {
		t.Fatal(err)
	}
	b, page := e.adminBrowser()
	token := csrf(t, page)
	if _, page := b.get(e.issuer + "/admin/users"); !strings.Contains(page, "<td>corp-ldap</td>") || !strings.Contains(page, "<td>local</td>") {
		t.Fatalf("users page without sources:\n%s", page)
	}
	_, page = b.get(e.issuer + "/admin/user?name=dana")
	if !strings.Contains(page, "corp-ldap: name, email, groups and password come from there") ||
		strings.Contains(page, `value="groups"`) || strings.Contains(page, `value="password"`) || !strings.Contains(page, `value="disable"`) {
		t.Fatalf("dana's page:\n%s", page)
	}
	for _, f := range []url.Values{
		{"action": {"groups"}, "username": {"dana"}, "groups": {"admins"}},
		{"action": {"password"}, "username": {"dana"}, "password": {"a password of her own 1"}},
	} {
		resp, page := e.act(b, token, "/admin/user", f)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "read-only here") {
			t.Fatalf("%s on dana: %d\n%s", f.Get("action"), resp.StatusCode, page)
		}
	}
	if u, _ := e.users.Lookup(context.Background(), "dana"); strings.Join(u.Groups, ",") != "staff" || u.PasswordHash != "" {
		t.Fatalf("dana changed: %+v", u)
	}
	// Disabling stays possible.
	if resp, _ := e.act(b, token, "/admin/user", url.Values{"action": {"disable"}, "username": {"dana"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	if u, _ := e.users.Lookup(context.Background(), "dana"); !u.Disabled {
		t.Fatal("dana not disabled")
	}
}
