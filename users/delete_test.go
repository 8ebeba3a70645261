package users

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
)

// A deleted user is gone from every index; its name and address are
// free again, and another account's entries are untouched.
func TestDelete(t *testing.T) {
	ctx := context.Background()
	d := New(memstore.New(), time.Now)
	alice, err := d.Create(ctx, User{Username: "alice", Email: "alice@example.com"}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := d.Create(ctx, User{Username: "bob", Email: "bob@example.com"}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	pend, err := d.Create(ctx, User{Username: "pend", Email: "alice@example.com", Inactive: true}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, alice.Subject); err != nil {
		t.Fatal(err)
	}
	for _, login := range []string{"alice", "alice@example.com"} {
		if u, err := d.Lookup(ctx, login); err == nil && u.Subject == alice.Subject {
			t.Fatalf("%s still finds alice", login)
		}
	}
	if _, err := d.Get(ctx, alice.Subject); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := d.Authenticate(ctx, "alice", "pw"); err == nil {
		t.Fatal("a deleted user signs in")
	}
	list, _ := d.List(ctx)
	if len(list) != 2 {
		t.Fatalf("list %v", list)
	}
	if _, err := d.Lookup(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, User{Username: "alice", Email: "alice@example.com"}, "pw"); err != nil {
		t.Fatalf("the name is not free again: %v", err)
	}
	if err := d.Delete(ctx, pend.Subject); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, pend.Subject); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	_ = bob
}
