package users

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// A remote identity belongs to one account: linking it to a second is
// refused, in Create and in Update, also when two try at once; unlinking
// frees it.
func TestRemoteIdentityIndex(t *testing.T) {
	ctx := context.Background()
	d, _, _ := newDir(t)
	g := Remote{Issuer: "https://idp.example", Subject: "r-1", Module: "Corp"}
	alice, err := d.Create(ctx, User{Username: "alice", Remotes: []Remote{g}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := d.LookupRemote(ctx, g.Issuer, g.Subject); err != nil || u.Subject != alice.Subject {
		t.Fatalf("lookup: %v %v", u.Subject, err)
	}
	// The pair is the key: the same subject at another issuer is another
	// identity, and a separator cannot make two pairs collide.
	for _, k := range [][2]string{{"https://other.example", "r-1"}, {"https://idp.example", ""}, {"https://idp.examp", "ler-1"}} {
		if _, err := d.LookupRemote(ctx, k[0], k[1]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup %v: %v", k, err)
		}
	}
	if _, err := d.Create(ctx, User{Username: "bob", Remotes: []Remote{g}}, ""); !errors.Is(err, ErrLinked) {
		t.Fatalf("create with a linked identity: %v", err)
	}
	if _, err := d.Lookup(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused create left a user: %v", err)
	}
	bob, err := d.Create(ctx, User{Username: "bob"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(ctx, bob.Subject, func(u *User) error { u.Remotes = append(u.Remotes, g); return nil }); !errors.Is(err, ErrLinked) {
		t.Fatalf("update with a linked identity: %v", err)
	}
	if _, err := d.Update(ctx, bob.Subject, func(u *User) error { u.Remotes = []Remote{g, g}; return nil }); err == nil {
		t.Fatal("one identity twice accepted")
	}
	if _, err := d.Update(ctx, bob.Subject, func(u *User) error { u.Remotes = []Remote{{Issuer: "x"}}; return nil }); err == nil {
		t.Fatal("an identity without subject accepted")
	}
	// Unlinked from alice, it may be bob's.
	if _, err := d.Update(ctx, alice.Subject, func(u *User) error { u.Remotes = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LookupRemote(ctx, g.Issuer, g.Subject); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unlinked identity still found: %v", err)
	}
	// Two accounts racing for one identity: exactly one gets it.
	carol, _ := d.Create(ctx, User{Username: "carol"}, "")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, sub := range []string{bob.Subject, carol.Subject} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = d.Update(ctx, sub, func(u *User) error { u.Remotes = append(u.Remotes, g); return nil })
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("race: %v / %v", errs[0], errs[1])
	}
	owner, err := d.LookupRemote(ctx, g.Issuer, g.Subject)
	if err != nil || (owner.Subject != bob.Subject && owner.Subject != carol.Subject) {
		t.Fatalf("owner after race: %v %v", owner.Subject, err)
	}
	for _, s := range []string{bob.Subject, carol.Subject} {
		u, _ := d.Get(ctx, s)
		if _, has := u.RemoteOf(g.Issuer, g.Subject); has != (s == owner.Subject) {
			t.Fatalf("%s has the identity: %v", u.Username, has)
		}
	}
}

// Deleting an account frees its linked identities for another.
func TestDeleteFreesRemoteIdentities(t *testing.T) {
	ctx := context.Background()
	d, _, _ := newDir(t)
	g := Remote{Issuer: "https://idp.example", Subject: "r-1"}
	a, err := d.Create(ctx, User{Username: "a", Remotes: []Remote{g}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, a.Subject); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LookupRemote(ctx, g.Issuer, g.Subject); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after delete: %v", err)
	}
	if _, err := d.Create(ctx, User{Username: "b", Remotes: []Remote{g}}, ""); err != nil {
		t.Fatalf("identity not free after delete: %v", err)
	}
}
