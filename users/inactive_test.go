package users

import (
	"context"
	"errors"
	"testing"
)

// An inactive account's address is pending: it keeps nobody from the
// address (another account may name or claim it), it finds the account
// while no other names it, and activating claims it — once.
func TestInactiveAccountsClaimTheirAddressWhenActivated(t *testing.T) {
	d, st, _ := newDir(t)
	ctx := context.Background()
	alice, err := d.Create(ctx, User{Username: "alice", Email: "alice@example.com"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// An address an active account has: an inactive account may name
	// it (sign-up does not tell), and the address still finds alice.
	squat, err := d.Create(ctx, User{Username: "mallory", Email: "Alice@Example.com", Inactive: true}, "")
	if err != nil {
		t.Fatalf("inactive account naming a claimed address: %v", err)
	}
	if u := mustLookup(t, d, "alice@example.com"); u.Subject != alice.Subject {
		t.Fatalf("the address finds %q", u.Username)
	}
	// Activating it would claim alice's address: refused, nothing changed.
	if _, err := d.Update(ctx, squat.Subject, func(u *User) error { u.Inactive = false; return nil }); !errors.Is(err, ErrTaken) {
		t.Fatalf("activating onto a claimed address: %v", err)
	}
	checkConsistent(t, st)

	// A free address named by one inactive account finds it; by two,
	// neither (the username tells them apart).
	bob, err := d.Create(ctx, User{Username: "bob", Email: "bob@example.com", Inactive: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if u := mustLookup(t, d, "BOB@example.com"); u.Subject != bob.Subject {
		t.Fatalf("pending address finds %q", u.Username)
	}
	bob2, err := d.Create(ctx, User{Username: "bob2", Email: "bob@example.com", Inactive: true}, "")
	if err != nil {
		t.Fatalf("a second inactive account naming the address: %v", err)
	}
	if _, err := d.Lookup(ctx, "bob@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("two pending accounts, one address: %v", err)
	}
	checkConsistent(t, st)

	// The first activated claims the address; the other cannot.
	if _, err := d.Update(ctx, bob2.Subject, func(u *User) error { u.Inactive = false; u.EmailVerified = true; return nil }); err != nil {
		t.Fatalf("activating: %v", err)
	}
	if u := mustLookup(t, d, "bob@example.com"); u.Subject != bob2.Subject {
		t.Fatalf("after activation the address finds %q", u.Username)
	}
	if _, err := d.Update(ctx, bob.Subject, func(u *User) error { u.Inactive = false; return nil }); !errors.Is(err, ErrTaken) {
		t.Fatalf("second activation: %v", err)
	}
	// Now that one is active, a new account cannot claim the address;
	// an inactive one still may name it.
	if _, err := d.Create(ctx, User{Username: "carol", Email: "bob@example.com"}, ""); !errors.Is(err, ErrTaken) {
		t.Fatalf("active account onto a claimed address: %v", err)
	}
	checkConsistent(t, st)

	// An inactive account's address may change; it moves between the
	// pending sets.
	if _, err := d.Update(ctx, bob.Subject, func(u *User) error { u.Email = "robert@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if u := mustLookup(t, d, "robert@example.com"); u.Subject != bob.Subject {
		t.Fatalf("moved pending address finds %q", u.Username)
	}
	checkConsistent(t, st)

	// Its username is claimed like any: a taken one is refused, and so
	// is one that is an active account's address.
	if _, err := d.Create(ctx, User{Username: "bob", Email: "x@example.com", Inactive: true}, ""); !errors.Is(err, ErrTaken) {
		t.Fatalf("inactive account with a taken username: %v", err)
	}
	if _, err := d.Create(ctx, User{Username: "alice@example.com", Inactive: true}, ""); !errors.Is(err, ErrTaken) {
		t.Fatalf("username that is an address: %v", err)
	}
}

// The password of an inactive account is checked (activation follows a
// sign-in with it), by username and by its pending address.
func TestInactiveAccountsAuthenticate(t *testing.T) {
	d, _, _ := newDir(t)
	ctx := context.Background()
	u, err := d.Create(ctx, User{Username: "dora", Email: "dora@example.com", Inactive: true}, "long enough pass")
	if err != nil {
		t.Fatal(err)
	}
	for _, login := range []string{"dora", "dora@example.com"} {
		got, err := d.Authenticate(ctx, login, "long enough pass")
		if err != nil || got.Subject != u.Subject || !got.Inactive {
			t.Fatalf("%s: %+v %v", login, got, err)
		}
	}
	if _, err := d.Authenticate(ctx, "dora@example.com", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
}
