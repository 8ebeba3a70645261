package users

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store/embedded"
)

func newDir(t *testing.T) *Directory {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "u.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, nil)
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not PHC argon2id with the expected parameters", h)
	}
	if h2, _ := HashPassword("s3cret pass"); h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if ok, err := CheckPassword(h, "s3cret pass"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := CheckPassword(h, "s3cret pasS"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=18$m=1,t=1,p=1$AA$AA",
		"$argon2id$v=19$m=0,t=1,p=1$AA$AA", "$argon2id$v=19$m=1,t=1,p=1$!!$AA"} {
		if ok, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("malformed hash %q: %v %v", bad, ok, err)
		}
	}
}

func TestCreateAndLookup(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	alice, err := d.Create(ctx, User{Username: "Alice", Email: "Alice@Example.com", Groups: []string{"staff"}}, "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Subject == "" || alice.PasswordHash == "" || alice.CreatedAt.IsZero() {
		t.Fatalf("created %+v", alice)
	}
	for _, login := range []string{"alice", "ALICE", " alice ", "alice@example.com", "ALICE@EXAMPLE.COM"} {
		u, err := d.Lookup(ctx, login)
		if err != nil || u.Subject != alice.Subject {
			t.Errorf("Lookup(%q) = %v, %v", login, u.Subject, err)
		}
	}
	if _, err := d.Lookup(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	dups := []User{
		{Username: "alice"},
		{Username: "ALICE"},
		{Username: "other", Email: "alice@example.COM"},
		{Username: "alice@example.com"}, // would shadow alice's email
	}
	for _, u := range dups {
		if _, err := d.Create(ctx, u, "pw"); !errors.Is(err, ErrTaken) {
			t.Errorf("Create(%+v) = %v, want ErrTaken", u, err)
		}
	}
	// A failed create leaves no reservation behind.
	if _, err := d.Create(ctx, User{Username: "other", Email: "other@example.com"}, "pw"); err != nil {
		t.Fatalf("create after failed duplicate: %v", err)
	}
	for _, bad := range []User{{Username: ""}, {Username: "has space"}, {Username: strings.Repeat("a", 65)}, {Username: "ok", Email: "not-an-email"}} {
		if _, err := d.Create(ctx, bad, "pw"); err == nil || errors.Is(err, ErrTaken) {
			t.Errorf("Create(%+v) = %v, want a validation error", bad, err)
		}
	}
	list, err := d.List(ctx)
	if err != nil || len(list) != 2 || list[0].Username != "Alice" || list[1].Username != "other" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if list[0].Public().PasswordHash != "" {
		t.Fatal("Public keeps the hash")
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	alice, _ := d.Create(ctx, User{Username: "alice", Email: "a@example.com"}, "right")
	d.Create(ctx, User{Username: "nopw"}, "")
	d.Create(ctx, User{Username: "off"}, "right")
	d.Update(ctx, mustLookup(t, d, "off").Subject, func(u *User) error { u.Disabled = true; return nil })

	if u, err := d.Authenticate(ctx, "a@example.com", "right"); err != nil || u.Subject != alice.Subject {
		t.Fatalf("good login: %v", err)
	}
	for _, c := range []struct{ login, pw string }{{"alice", "wrong"}, {"nobody", "right"}, {"nopw", ""}, {"nopw", "x"}, {"off", "right"}, {"", ""}} {
		start := time.Now()
		_, err := d.Authenticate(ctx, c.login, c.pw)
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q,%q) = %v, want ErrInvalidCredentials", c.login, c.pw, err)
		}
		// Every failure pays for one argon2id hash (no fast path that
		// tells unknown users apart).
		if d := time.Since(start); d < 5*time.Millisecond {
			t.Errorf("Authenticate(%q) took only %v", c.login, d)
		}
	}
}

func mustLookup(t *testing.T, d *Directory, login string) User {
	u, err := d.Lookup(context.Background(), login)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUpdateAndSetPassword(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	a, _ := d.Create(ctx, User{Username: "alice", Email: "a@example.com"}, "one")
	d.Create(ctx, User{Username: "bob", Email: "b@example.com"}, "pw")

	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Email = "b@example.com"; return nil }); !errors.Is(err, ErrTaken) {
		t.Fatalf("email taken: %v", err)
	}
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Username = "alicia"; u.Email = "new@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if mustLookup(t, d, "alicia").Subject != a.Subject || mustLookup(t, d, "new@example.com").Subject != a.Subject {
		t.Fatal("new names do not find the user")
	}
	for _, old := range []string{"alice", "a@example.com"} {
		if _, err := d.Lookup(ctx, old); !errors.Is(err, ErrNotFound) {
			t.Errorf("old name %q still resolves: %v", old, err)
		}
	}
	boom := errors.New("boom")
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Name = "X"; return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if u, _ := d.Get(ctx, a.Subject); u.Name == "X" {
		t.Fatal("failed update was saved")
	}
	if _, err := d.Update(ctx, "no-such-subject", func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}

	before, _ := d.Get(ctx, a.Subject)
	if _, err := d.SetPassword(ctx, a.Subject, "two"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, "alicia", "one"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal("old password still works")
	}
	after, err := d.Authenticate(ctx, "alicia", "two")
	if err != nil || !after.PasswordChangedAt.After(before.PasswordChangedAt) && !after.PasswordChangedAt.Equal(before.PasswordChangedAt) {
		t.Fatalf("new password: %v", err)
	}
	if _, err := d.SetPassword(ctx, a.Subject, ""); err == nil {
		t.Fatal("empty password accepted")
	}
}
