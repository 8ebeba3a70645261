package admin_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/admin"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/internal/slapdtest"
	"github.com/gatehouse-idp/gatehouse/users"
)

// What a directory owns is refused with a reason the admin API and the
// console show as it is.
func TestDirectoryAccountsAreReadOnly(t *testing.T) {
	srv := slapdtest.Start(t)
	srv.AddUser(t, "bob", "bob's directory password", "bob@acme.test", "Bob")
	svc := &admin.Service{Users: users.NewWith(memstore.New(), users.Options{Sources: []users.Source{srv.Source(t)}})}
	ctx := t.Context()
	bob, err := svc.FindUser(ctx, "bob") // imported on lookup
	if err != nil || bob.Federation == nil {
		t.Fatalf("bob: %v %+v", err, bob)
	}
	conflict := func(what string, err error, want string) {
		t.Helper()
		var e *admin.Error
		if !errors.As(err, &e) || e.Kind != admin.Conflict || !strings.Contains(e.Msg, want) {
			t.Errorf("%s: %v, want a conflict saying %q", what, err, want)
		}
	}
	_, err = svc.SetGroups(ctx, bob, []string{"admins"})
	conflict("groups", err, `the groups of bob comes from the user source "ldap" and is read-only here`)
	_, err = svc.SetPassword(ctx, "root", bob, "a password of its own 1")
	conflict("password", err, "read-only")
	_, err = svc.CreateUser(ctx, users.User{Username: "Bob"}, "a password of its own 1")
	conflict("a local namesake", err, `is an account of the user source "ldap"`)
	if u, err := svc.SetDisabled(ctx, bob, false); err != nil || u.Disabled {
		t.Fatalf("enabling: %v", err)
	}
}
