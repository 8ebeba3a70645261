package users

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newDir(t *testing.T) (*Directory, *memstore.Store, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0).UTC()}
	st := memstore.New()
	st.Now = c.now
	t.Cleanup(func() { st.Close() })
	return New(st, c.now), st, c
}

func TestPasswordHashFormat(t *testing.T) {
	h, err := HashPassword("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not PHC argon2id with the expected parameters", h)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 6 {
		t.Fatalf("hash %q has %d $-parts, want 6", h, len(parts))
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) != 16 {
		t.Fatalf("salt %q: %d bytes, %v", parts[4], len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) != 32 {
		t.Fatalf("key %q: %d bytes, %v", parts[5], len(key), err)
	}
	// The key is argon2id of the password with the salt and parameters shown.
	if want := argon2.IDKey([]byte("s3cret pass"), salt, 2, 19456, 1, 32); string(want) != string(key) {
		t.Fatal("key is not argon2id(password, salt, t=2, m=19456, p=1)")
	}
	if h2, _ := HashPassword("s3cret pass"); h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
}

func TestCheckPassword(t *testing.T) {
	h, err := HashPassword("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := CheckPassword(h, "s3cret pass"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	for _, wrong := range []string{"s3cret pasS", "", "s3cret pass ", "s3cret"} {
		if ok, err := CheckPassword(h, wrong); ok || err != nil {
			t.Errorf("wrong password %q: %v %v", wrong, ok, err)
		}
	}
	// Parameters are read from the hash: a hash made with other (older,
	// cheaper) parameters still verifies.
	salt := []byte("0123456789abcdef")
	b64 := base64.RawStdEncoding
	old := fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=2$%s$%s", b64.EncodeToString(salt),
		b64.EncodeToString(argon2.IDKey([]byte("old"), salt, 1, 64, 2, 16)))
	if ok, err := CheckPassword(old, "old"); !ok || err != nil {
		t.Fatalf("hash with other parameters: %v %v", ok, err)
	}
	if ok, err := CheckPassword(old, "new"); ok || err != nil {
		t.Fatalf("hash with other parameters, wrong password: %v %v", ok, err)
	}
}

func TestCheckPasswordMalformed(t *testing.T) {
	good, _ := HashPassword("x")
	parts := strings.Split(good, "$")
	for name, bad := range map[string]string{
		"empty":         "",
		"plain":         "plain",
		"bcrypt":        "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":       "$argon2i$v=19$m=1,t=1,p=1$AA$AA",
		"old version":   "$argon2id$v=18$m=1,t=1,p=1$AA$AA",
		"no version":    "$argon2id$m=19456,t=2,p=1$" + parts[4] + "$" + parts[5],
		"m=0":           "$argon2id$v=19$m=0,t=1,p=1$AA$AA",
		"t=0":           "$argon2id$v=19$m=8,t=0,p=1$AA$AA",
		"p=0":           "$argon2id$v=19$m=8,t=1,p=0$AA$AA",
		"bad params":    "$argon2id$v=19$memory=8$AA$AA",
		"bad salt":      "$argon2id$v=19$m=1,t=1,p=1$!!$AA",
		"bad key":       "$argon2id$v=19$m=8,t=1,p=1$AAAA$!!",
		"empty key":     "$argon2id$v=19$m=8,t=1,p=1$AAAA$",
		"extra part":    good + "$x",
		"truncated":     strings.Join(parts[:5], "$"),
		"no leading $":  strings.TrimPrefix(good, "$"),
		"padded base64": "$argon2id$v=19$m=8,t=1,p=1$AAAA$AA==",
	} {
		if ok, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("%s %q: ok=%v err=%v, want an error", name, bad, ok, err)
		}
	}
}

func TestValidateUsername(t *testing.T) {
	for _, ok := range []string{"a", "alice", "Alice.Smith", "a_b-c", "bob@example.com", "x+y", "jürgen", "用户", "0", strings.Repeat("a", 64)} {
		if err := ValidateUsername(ok); err != nil {
			t.Errorf("ValidateUsername(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "has space", "tab\t", "a/b", "a:b", "a<b", "a\x00b", "new\nline", strings.Repeat("a", 65)} {
		if err := ValidateUsername(bad); err == nil {
			t.Errorf("ValidateUsername(%q) accepted", bad)
		}
	}
}

func TestCreateAndGet(t *testing.T) {
	ctx := context.Background()
	d, _, c := newDir(t)
	alice, err := d.Create(ctx, User{Username: "Alice", Email: "Alice@Example.com", Name: "Alice A", Groups: []string{"staff", "admins"},
		Subject: "chosen-by-caller", CreatedAt: time.Unix(1, 0)}, "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Subject == "" || alice.Subject == "chosen-by-caller" {
		t.Fatalf("subject %q: not assigned by Create", alice.Subject)
	}
	if !alice.CreatedAt.Equal(c.now()) || !alice.UpdatedAt.Equal(c.now()) || !alice.PasswordChangedAt.Equal(c.now()) {
		t.Fatalf("times %v %v %v, want %v", alice.CreatedAt, alice.UpdatedAt, alice.PasswordChangedAt, c.now())
	}
	if ok, err := CheckPassword(alice.PasswordHash, "pw-alice"); !ok || err != nil {
		t.Fatalf("stored hash does not verify: %v %v", ok, err)
	}
	got, err := d.Get(ctx, alice.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "Alice" || got.Email != "Alice@Example.com" || got.Name != "Alice A" ||
		strings.Join(got.Groups, ",") != "staff,admins" || got.PasswordHash != alice.PasswordHash || !got.CreatedAt.Equal(alice.CreatedAt) {
		t.Fatalf("Get = %+v, want %+v", got, alice)
	}
	if _, err := d.Get(ctx, "no-such-subject"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	if _, err := d.Get(ctx, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get empty: %v", err)
	}

	// Subjects are distinct UUIDv4s.
	bob, err := d.Create(ctx, User{Username: "bob"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if bob.Subject == alice.Subject || len(bob.Subject) != 36 || bob.Subject[14] != '4' {
		t.Fatalf("subject %q is not a fresh UUIDv4", bob.Subject)
	}
	if bob.PasswordHash != "" || !bob.PasswordChangedAt.IsZero() {
		t.Fatalf("user without password has %q / %v", bob.PasswordHash, bob.PasswordChangedAt)
	}
}

func TestCreateDuplicates(t *testing.T) {
	ctx := context.Background()
	d, st, _ := newDir(t)
	if _, err := d.Create(ctx, User{Username: "Alice", Email: "Alice@Example.com"}, "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, User{Username: "carol@example.com"}, "pw"); err != nil {
		t.Fatal(err)
	}
	keysBefore := st.Keys("")
	for _, u := range []User{
		{Username: "alice"},
		{Username: "ALICE"},
		{Username: "aLiCe", Email: "fresh@example.com"},
		{Username: "other", Email: "alice@example.COM"},
		{Username: "other", Email: "ALICE@EXAMPLE.COM"},
		{Username: "alice@example.com"},                  // would shadow alice's email
		{Username: "ALICE@example.com"},                  // … in any case
		{Username: "dave", Email: "Carol@Example.com"},   // would shadow carol's username
		{Username: "carol@example.com", Email: "c@x.io"}, // carol's username
	} {
		if _, err := d.Create(ctx, u, "pw"); !errors.Is(err, ErrTaken) {
			t.Errorf("Create(%+v) = %v, want ErrTaken", u, err)
		}
	}
	// Failed creates leave no reservation and no record behind.
	if after := st.Keys(""); strings.Join(after, " ") != strings.Join(keysBefore, " ") {
		t.Fatalf("keys changed by failed creates:\n before %v\n after  %v", keysBefore, after)
	}
	if _, err := d.Create(ctx, User{Username: "other", Email: "other@example.com"}, "pw"); err != nil {
		t.Fatalf("create after failed duplicates: %v", err)
	}
	if list, _ := d.List(ctx); len(list) != 3 {
		t.Fatalf("List has %d users, want 3", len(list))
	}
}

func TestCreateInvalid(t *testing.T) {
	ctx := context.Background()
	d, st, _ := newDir(t)
	for _, bad := range []User{
		{Username: ""},
		{Username: "has space"},
		{Username: "semi;colon"},
		{Username: strings.Repeat("a", 65)},
		{Username: "ok", Email: "not-an-email"},
	} {
		if _, err := d.Create(ctx, bad, "pw"); err == nil || errors.Is(err, ErrTaken) {
			t.Errorf("Create(%+v) = %v, want a validation error", bad, err)
		}
	}
	if n := st.Len(); n != 0 {
		t.Fatalf("invalid creates left %d keys: %v", n, st.Keys(""))
	}
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	d, _, _ := newDir(t)
	alice, _ := d.Create(ctx, User{Username: "Alice", Email: "Alice@Example.com"}, "pw")
	bob, _ := d.Create(ctx, User{Username: "bob"}, "pw")
	for login, want := range map[string]string{
		"alice": alice.Subject, "ALICE": alice.Subject, " alice ": alice.Subject, "\talice\n": alice.Subject,
		"alice@example.com": alice.Subject, "ALICE@EXAMPLE.COM": alice.Subject, "Bob": bob.Subject,
	} {
		u, err := d.Lookup(ctx, login)
		if err != nil || u.Subject != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", login, u.Subject, err, want)
		}
	}
	for _, login := range []string{"", "   ", "carol", "alic", "alice@example", "bob@example.com"} {
		if _, err := d.Lookup(ctx, login); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want ErrNotFound", login, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	d, _, _ := newDir(t)
	alice, _ := d.Create(ctx, User{Username: "alice", Email: "a@example.com"}, "right")
	if _, err := d.Create(ctx, User{Username: "nopw"}, ""); err != nil {
		t.Fatal(err)
	}
	off, _ := d.Create(ctx, User{Username: "off"}, "right")
	if _, err := d.Update(ctx, off.Subject, func(u *User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}

	for _, login := range []string{"alice", "ALICE", "a@example.com", " A@Example.com "} {
		u, err := d.Authenticate(ctx, login, "right")
		if err != nil || u.Subject != alice.Subject || u.Username != "alice" {
			t.Fatalf("Authenticate(%q) = %+v, %v", login, u, err)
		}
	}
	const dummy = "gatehouse-dummy-password" // the password behind the timing dummy hash
	for _, c := range []struct{ name, login, pw string }{
		{"wrong password", "alice", "wrong"},
		{"password in other case", "alice", "RIGHT"},
		{"empty password", "alice", ""},
		{"unknown user", "nobody", "right"},
		{"unknown user, dummy password", "nobody", dummy},
		{"no password set", "nopw", ""},
		{"no password set, some password", "nopw", "x"},
		{"no password set, dummy password", "nopw", dummy},
		{"disabled", "off", "right"},
		{"empty login", "", ""},
	} {
		start := time.Now()
		u, err := d.Authenticate(ctx, c.login, c.pw)
		if err != ErrInvalidCredentials {
			t.Errorf("%s: Authenticate(%q,%q) = %v, want exactly ErrInvalidCredentials", c.name, c.login, c.pw, err)
		}
		if u.Subject != "" || u.PasswordHash != "" {
			t.Errorf("%s: failed Authenticate returned a user %+v", c.name, u)
		}
		// Every failure pays for one argon2id hash (no fast path that
		// tells unknown users apart).
		if el := time.Since(start); el < 5*time.Millisecond {
			t.Errorf("%s: Authenticate took only %v", c.name, el)
		}
	}
	// Re-enabled, the account works again.
	if _, err := d.Update(ctx, off.Subject, func(u *User) error { u.Disabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, "off", "right"); err != nil {
		t.Fatalf("re-enabled: %v", err)
	}
}

func mustLookup(t *testing.T, d *Directory, login string) User {
	t.Helper()
	u, err := d.Lookup(context.Background(), login)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", login, err)
	}
	return u
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	d, _, c := newDir(t)
	a, _ := d.Create(ctx, User{Username: "alice", Email: "a@example.com", Groups: []string{"g1"}}, "one")
	d.Create(ctx, User{Username: "bob", Email: "b@example.com"}, "pw")

	c.add(time.Minute)
	u, err := d.Update(ctx, a.Subject, func(u *User) error {
		u.Name = "Alice"
		u.Groups = append(u.Groups, "g2")
		u.Subject = "hijack"          // ignored
		u.Username = "ALICE"          // case-only change keeps the index
		u.CreatedAt = time.Unix(0, 0) // not protected: documented by this test only
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.Subject != a.Subject || u.Name != "Alice" || strings.Join(u.Groups, ",") != "g1,g2" || !u.UpdatedAt.Equal(c.now()) {
		t.Fatalf("updated %+v", u)
	}
	if got, _ := d.Get(ctx, a.Subject); got.Name != "Alice" || got.Username != "ALICE" {
		t.Fatalf("stored %+v", got)
	}
	if _, err := d.Get(ctx, "hijack"); !errors.Is(err, ErrNotFound) {
		t.Fatal("Update changed the subject")
	}
	if mustLookup(t, d, "alice").Subject != a.Subject {
		t.Fatal("case-only rename lost the index")
	}

	// Rename and new email move the index entries.
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Username = "alicia"; u.Email = "new@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if mustLookup(t, d, "alicia").Subject != a.Subject || mustLookup(t, d, "NEW@example.com").Subject != a.Subject {
		t.Fatal("new names do not find the user")
	}
	for _, old := range []string{"alice", "a@example.com"} {
		if _, err := d.Lookup(ctx, old); !errors.Is(err, ErrNotFound) {
			t.Errorf("old name %q still resolves: %v", old, err)
		}
	}
	// The old names are free again.
	if _, err := d.Create(ctx, User{Username: "alice", Email: "a@example.com"}, ""); err != nil {
		t.Fatalf("old names not released: %v", err)
	}
	// Removing the email frees it.
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Email = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(ctx, "new@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed email still resolves: %v", err)
	}

	boom := errors.New("boom")
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Name = "X"; u.Groups[0] = "mutated"; return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if u, _ := d.Get(ctx, a.Subject); u.Name == "X" || u.Groups[0] != "g1" {
		t.Fatalf("failed update was saved: %+v", u)
	}
	if _, err := d.Update(ctx, "no-such-subject", func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Username = "bad name"; return nil }); err == nil || errors.Is(err, ErrTaken) {
		t.Fatalf("invalid username: %v", err)
	}
}

// A refused Update changes nothing: the user keeps their names, and no
// name is left reserved for them.
func TestUpdateTakenRollsBack(t *testing.T) {
	ctx := context.Background()
	d, st, _ := newDir(t)
	a, _ := d.Create(ctx, User{Username: "alice", Email: "a@example.com"}, "pw")
	b, _ := d.Create(ctx, User{Username: "bob", Email: "b@example.com"}, "pw")
	keysBefore := strings.Join(st.Keys(""), " ")

	for _, c := range []struct {
		name string
		fn   func(*User) error
	}{
		{"username taken", func(u *User) error { u.Username = "BOB"; return nil }},
		{"email taken", func(u *User) error { u.Email = "B@example.com"; return nil }},
		{"rename, email taken", func(u *User) error { u.Username = "alicia"; u.Email = "b@example.com"; return nil }},
		{"username taken, new email free", func(u *User) error { u.Username = "bob"; u.Email = "free@example.com"; return nil }},
		{"username is another's email", func(u *User) error { u.Username = "b@example.com"; return nil }},
		{"email is another's username", func(u *User) error { u.Email = "BOB"; return nil }},
		{"email is another's username 2", func(u *User) error { u.Username = "x"; u.Email = "bob@x"; return nil }},
	} {
		name, fn := c.name, c.fn
		if name == "email is another's username" {
			// "BOB" is not an email address: refused either way.
			if _, err := d.Update(ctx, a.Subject, fn); err == nil {
				t.Errorf("%s: accepted", name)
			}
			continue
		}
		if name == "email is another's username 2" {
			if _, err := d.Create(ctx, User{Username: "bob@x"}, ""); err != nil {
				t.Fatal(err)
			}
			keysBefore = strings.Join(st.Keys(""), " ")
		}
		if _, err := d.Update(ctx, a.Subject, fn); !errors.Is(err, ErrTaken) {
			t.Errorf("%s: Update = %v, want ErrTaken", name, err)
		}
		if after := strings.Join(st.Keys(""), " "); after != keysBefore {
			t.Errorf("%s: store changed by a refused update:\n before %s\n after  %s", name, keysBefore, after)
			keysBefore = after
		}
		if u := mustLookup(t, d, "alice"); u.Subject != a.Subject || u.Username != "alice" || u.Email != "a@example.com" {
			t.Errorf("%s: alice is now %+v", name, u)
		}
		if u := mustLookup(t, d, "a@example.com"); u.Subject != a.Subject {
			t.Errorf("%s: alice's email lost", name)
		}
		if u := mustLookup(t, d, "b@example.com"); u.Subject != b.Subject {
			t.Errorf("%s: b@example.com now finds %q, not bob", name, u.Username)
		}
	}
	if _, err := d.Lookup(ctx, "alicia"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused rename left \"alicia\" reserved: %v", err)
	}
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Email = "not-an-email"; return nil }); err == nil {
		t.Fatal("Update accepted an email without @")
	}
}

func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	d, _, c := newDir(t)
	a, _ := d.Create(ctx, User{Username: "alice", Groups: []string{"g"}}, "one")
	c.add(time.Hour)
	u, err := d.SetPassword(ctx, a.Subject, "two")
	if err != nil {
		t.Fatal(err)
	}
	if !u.PasswordChangedAt.Equal(c.now()) || !u.PasswordChangedAt.After(a.PasswordChangedAt) {
		t.Fatalf("PasswordChangedAt %v, want %v", u.PasswordChangedAt, c.now())
	}
	if u.PasswordHash == a.PasswordHash || u.Groups[0] != "g" {
		t.Fatalf("after SetPassword %+v", u)
	}
	if _, err := d.Authenticate(ctx, "alice", "one"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal("old password still works")
	}
	if got, err := d.Authenticate(ctx, "alice", "two"); err != nil || !got.PasswordChangedAt.Equal(c.now()) {
		t.Fatalf("new password: %+v %v", got, err)
	}
	if _, err := d.SetPassword(ctx, a.Subject, ""); err == nil {
		t.Fatal("empty password accepted")
	}
	if _, err := d.Authenticate(ctx, "alice", "two"); err != nil {
		t.Fatal("refused empty password changed the password")
	}
	if _, err := d.SetPassword(ctx, "no-such-subject", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetPassword unknown: %v", err)
	}
	// A user created without a password can be given one.
	n, _ := d.Create(ctx, User{Username: "nopw"}, "")
	if _, err := d.SetPassword(ctx, n.Subject, "now"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, "nopw", "now"); err != nil {
		t.Fatalf("password set later: %v", err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	d, st, _ := newDir(t)
	if list, err := d.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("empty List = %v, %v", list, err)
	}
	for _, name := range []string{"carol", "Bob", "alice", "Dave"} {
		if _, err := d.Create(ctx, User{Username: name}, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		names = append(names, u.Username)
		if u.Subject == "" {
			t.Errorf("listed user without subject: %+v", u)
		}
	}
	if got := strings.Join(names, ","); got != "alice,Bob,carol,Dave" {
		t.Fatalf("List order %s, want case-insensitive by username", got)
	}
	if list[0].PasswordHash == "" || list[0].Public().PasswordHash != "" || list[0].Public().Username != "alice" {
		t.Fatal("Public must drop the hash and keep the rest")
	}
	// A dangling index entry (record gone) is skipped, not an error.
	if err := st.Delete(ctx, "user:"+list[0].Subject); err != nil {
		t.Fatal(err)
	}
	if list, err := d.List(ctx); err != nil || len(list) != 3 {
		t.Fatalf("List with a dangling entry = %d users, %v", len(list), err)
	}
}
