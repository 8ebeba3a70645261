package ldap_test

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/internal/slapdtest"
	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/users/ldap"
)

// world is a slapd with people and groups, an LDAP source over it and a
// directory federating it.
type world struct {
	srv        *slapdtest.Server
	src        *ldap.Source
	dir        *users.Directory
	alice, bob string // DNs
}

const (
	alicePW = "alice-secret-1"
	bobPW   = "bob-secret-22"
	svcPW   = "reader-secret"
)

func ctx(t *testing.T) context.Context { return t.Context() }

// baseSettings searches as a service account, groups from memberOf,
// disabled people (employeeType=disabled) kept out by the filter.
func baseSettings(srv *slapdtest.Server) ldap.Settings {
	return ldap.Settings{
		URL: srv.URL, BaseDN: srv.People,
		BindDN: "cn=reader," + slapdtest.Base, BindPassword: svcPW,
		UserFilter:    "(&(objectClass=inetOrgPerson)(!(employeeType=disabled))(|(uid={login})(mail={login})))",
		Attributes:    ldap.Attributes{Groups: "memberOf"},
		EmailVerified: true,
	}
}

func newWorld(t *testing.T, mod func(*ldap.Settings)) *world {
	t.Helper()
	srv := slapdtest.Start(t)
	srv.Add(t, "cn=reader,"+slapdtest.Base, map[string][]string{
		"objectClass": {"organizationalRole", "simpleSecurityObject"}, "cn": {"reader"}, "userPassword": {svcPW}})
	w := &world{srv: srv}
	w.alice = srv.AddUser(t, "alice", alicePW, "alice@acme.test", "Alice Smith")
	w.bob = srv.AddUser(t, "bob", bobPW, "bob@acme.test", "Bob Jones")
	srv.AddGroup(t, "admins", w.alice)
	srv.AddGroup(t, "staff", w.alice, w.bob)
	s := baseSettings(srv)
	if mod != nil {
		mod(&s)
	}
	w.src = w.newSource(t, s, 0)
	w.dir = users.NewWith(memstore.New(), users.Options{Sources: []users.Source{w.src}})
	return w
}

func (w *world) newSource(t *testing.T, s ldap.Settings, timeout time.Duration) *ldap.Source {
	t.Helper()
	src, err := ldap.New(s, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func TestSignInImportsWithMemberOf(t *testing.T) {
	w := newWorld(t, nil)
	u, err := w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.Email != "alice@acme.test" || !u.EmailVerified || u.Name != "Alice Smith" || u.PasswordHash != "" {
		t.Fatalf("imported %+v", u)
	}
	if !slices.Equal(u.Groups, []string{"admins", "staff"}) {
		t.Fatalf("groups %v, want admins staff", u.Groups)
	}
	if f := u.Federation; f == nil || f.Source != "ldap" || len(f.ID) < len("entryUUID:")+32 {
		t.Fatalf("federation %+v: want the source and the entryUUID", u.Federation)
	}
	// By address too, and the same account again.
	again, err := w.dir.Authenticate(ctx(t), "ALICE@acme.test", alicePW)
	if err != nil || again.Subject != u.Subject {
		t.Fatalf("by address: %v %+v, want subject %s", err, again, u.Subject)
	}
	list, _ := w.dir.List(ctx(t))
	if len(list) != 1 {
		t.Fatalf("%d accounts, want 1", len(list))
	}
	// Changes at the source reach the account at the next sign-in.
	w.srv.Replace(t, w.alice, "cn", "Alice Brown")
	w.srv.Replace(t, "cn=admins,"+w.srv.Groups, "member", w.bob)
	u, err = w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err != nil || u.Name != "Alice Brown" || !slices.Equal(u.Groups, []string{"staff"}) {
		t.Fatalf("after changes at the source: %v %+v", err, u)
	}
}

func TestGroupSearch(t *testing.T) {
	w := newWorld(t, func(s *ldap.Settings) {
		s.Attributes.Groups = ""
		s.GroupSearch = &ldap.GroupSearch{BaseDN: "ou=groups," + slapdtest.Base}
	})
	u, err := w.dir.Authenticate(ctx(t), "bob", bobPW)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Groups, []string{"staff"}) {
		t.Fatalf("groups %v, want staff", u.Groups)
	}
	// A group filter by username (posixGroup style) escapes it too.
	w.srv.Add(t, "cn=ops,"+w.srv.Groups, map[string][]string{"objectClass": {"posixGroup"}, "cn": {"ops"}, "gidNumber": {"7"}, "memberUid": {"bob"}})
	src := w.newSource(t, func() ldap.Settings {
		s := baseSettings(w.srv)
		s.Attributes.Groups = ""
		s.GroupSearch = &ldap.GroupSearch{BaseDN: w.srv.Groups, Filter: "(|(member={dn})(memberUid={login}))"}
		return s
	}(), 0)
	e, err := src.Authenticate(ctx(t), "bob", bobPW)
	if err != nil || !slices.Equal(e.Groups, []string{"staff", "ops"}) && !slices.Equal(e.Groups, []string{"ops", "staff"}) {
		t.Fatalf("%v %v, want staff and ops", err, e.Groups)
	}
}

func TestWrongPasswordAndUnknownUser(t *testing.T) {
	w := newWorld(t, nil)
	for _, c := range []struct{ login, pw string }{
		{"alice", "wrong"}, {"alice", ""}, {"nobody", "whatever"}, {"", alicePW}, {"alice@acme.test", bobPW},
	} {
		if _, err := w.dir.Authenticate(ctx(t), c.login, c.pw); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Errorf("%q/%q: %v, want ErrInvalidCredentials", c.login, c.pw, err)
		}
	}
	if list, _ := w.dir.List(ctx(t)); len(list) != 0 {
		t.Fatalf("a failed sign-in imported %d accounts", len(list))
	}
	// Timing class: an unknown login and a wrong password cost a password
	// hash each, like an unknown local user (without sources).
	local := users.NewWith(memstore.New(), users.Options{})
	cases := []func(){
		func() { _, _ = local.Authenticate(ctx(t), "nobody", "x") }, // the baseline
		func() { _, _ = w.dir.Authenticate(ctx(t), "nobody", "x") }, // unknown here and at the source
		func() { _, _ = w.dir.Authenticate(ctx(t), "alice", "x") },  // wrong password at the source
	}
	// The fastest of rounds taken in turn: the least noisy estimate of
	// each one's own cost on a shared machine.
	least := make([]time.Duration, len(cases))
	for range 7 {
		for i, f := range cases {
			start := time.Now()
			f()
			if d := time.Since(start); least[i] == 0 || d < least[i] {
				least[i] = d
			}
		}
	}
	for i, name := range []string{"", "unknown", "wrong password"} {
		if i > 0 && least[i] < least[0]*6/10 {
			t.Errorf("%s took %v, a local unknown user %v: it must cost a hash too", name, least[i], least[0])
		}
	}
}

func TestFilterInjection(t *testing.T) {
	w := newWorld(t, nil)
	for _, login := range []string{"*", "*)(uid=*", "alice)(|(uid=*", "al*", "*)(|(objectClass=*", "alice\x00", `alice\2a`, "(uid=alice)"} {
		if _, err := w.dir.Authenticate(ctx(t), login, alicePW); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Errorf("login %q with alice's password: %v, want refused", login, err)
		}
		if _, err := w.src.Lookup(ctx(t), login); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("lookup %q: %v, want not found", login, err)
		}
	}
}

func TestDisabledAndRemovedAtTheSource(t *testing.T) {
	w := newWorld(t, nil)
	u, err := w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := w.dir.Current(ctx(t), u.Subject); err != nil || cur.Disabled {
		t.Fatalf("current before: %v %+v", err, cur)
	}
	w.srv.Replace(t, w.alice, "employeeType", "disabled")
	if _, err := w.dir.Authenticate(ctx(t), "alice", alicePW); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("disabled at the source: %v, want refused", err)
	}
	if cur, err := w.dir.Current(ctx(t), u.Subject); err != nil || !cur.Disabled {
		t.Fatalf("current of a disabled account: %v disabled=%v, want disabled", err, cur.Disabled)
	}
	w.srv.Replace(t, w.alice, "employeeType")
	if cur, err := w.dir.Current(ctx(t), u.Subject); err != nil || cur.Disabled {
		t.Fatalf("enabled again: %v %+v", err, cur)
	}
	w.srv.Delete(t, "cn=admins,"+w.srv.Groups)
	w.srv.Delete(t, "cn=staff,"+w.srv.Groups)
	w.srv.Delete(t, w.alice)
	if cur, err := w.dir.Current(ctx(t), u.Subject); err != nil || !cur.Disabled {
		t.Fatalf("current of a removed account: %v disabled=%v", err, cur.Disabled)
	}
	if _, err := w.dir.Authenticate(ctx(t), "alice", alicePW); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("removed at the source: %v", err)
	}
}

func TestRenameAtTheSourceKeepsTheAccount(t *testing.T) {
	w := newWorld(t, nil)
	u, err := w.dir.Authenticate(ctx(t), "bob", bobPW)
	if err != nil {
		t.Fatal(err)
	}
	w.srv.Rename(t, w.bob, "uid=robert")
	cur, err := w.dir.Current(ctx(t), u.Subject)
	if err != nil || cur.Disabled || cur.Username != "robert" || cur.Subject != u.Subject {
		t.Fatalf("after a rename: %v %+v", err, cur)
	}
	if got, err := w.dir.Authenticate(ctx(t), "robert", bobPW); err != nil || got.Subject != u.Subject {
		t.Fatalf("signing in with the new name: %v %+v", err, got)
	}
}

func TestReadOnly(t *testing.T) {
	w := newWorld(t, nil)
	u, err := w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	for field, fn := range map[string]func(*users.User){
		"groups":   func(x *users.User) { x.Groups = append(x.Groups, "root") },
		"email":    func(x *users.User) { x.Email = "mallory@evil.test" },
		"name":     func(x *users.User) { x.Name = "Mallory" },
		"username": func(x *users.User) { x.Username = "mallory" },
		"password": func(x *users.User) { x.PasswordHash = "$argon2id$v=19$m=1,t=1,p=1$AA$AA" },
		"source":   func(x *users.User) { x.Federation = nil },
	} {
		_, err := w.dir.Update(ctx(t), u.Subject, func(x *users.User) error { fn(x); return nil })
		var ro *users.ReadOnlyError
		if !errors.As(err, &ro) || ro.Field != field || !errors.Is(err, users.ErrReadOnly) {
			t.Errorf("changing %s: %v, want read-only", field, err)
		}
	}
	// Through the pointer too.
	if _, err := w.dir.Update(ctx(t), u.Subject, func(x *users.User) error { x.Federation.ID = "dn:cn=someone-else"; return nil }); !errors.Is(err, users.ErrReadOnly) {
		t.Errorf("changing the source's id in place: %v, want read-only", err)
	}
	if _, err := w.dir.SetPassword(ctx(t), u.Subject, "a new long password 123"); !errors.Is(err, users.ErrReadOnly) {
		t.Errorf("SetPassword: %v, want read-only", err)
	}
	// What is local stays possible: disabling, a locale, deleting.
	if _, err := w.dir.Update(ctx(t), u.Subject, func(x *users.User) error { x.Disabled, x.Locale = true, "de"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := w.dir.Authenticate(ctx(t), "alice", alicePW); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("disabled here: %v, want refused", err)
	}
	if err := w.dir.Delete(ctx(t), u.Subject); err != nil {
		t.Fatal(err)
	}
	again, err := w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err != nil || again.Subject == u.Subject || again.Disabled {
		t.Fatalf("after delete: %v %+v, want a fresh account", err, again)
	}
}

func TestLocalAccountsComeFirst(t *testing.T) {
	w := newWorld(t, nil)
	// A local bob, made before the source was configured.
	st := memstore.New()
	local := users.NewWith(st, users.Options{})
	lb, err := local.Create(ctx(t), users.User{Username: "bob"}, "local bob password 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Create(ctx(t), users.User{Username: "carol", Email: "alice@acme.test"}, "carol's own password 1"); err != nil {
		t.Fatal(err)
	}
	fed := users.NewWith(st, users.Options{Sources: []users.Source{w.src}})
	if u, err := fed.Authenticate(ctx(t), "bob", "local bob password 1"); err != nil || u.Subject != lb.Subject {
		t.Fatalf("local bob: %v %+v", err, u)
	}
	if _, err := fed.Authenticate(ctx(t), "bob", bobPW); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("LDAP bob's password on the local bob: %v, want refused", err)
	}
	// LDAP alice's address is local carol's: alice is not imported.
	if _, err := fed.Authenticate(ctx(t), "alice", alicePW); !errors.Is(err, users.ErrSourceConflict) {
		t.Fatalf("alice colliding with carol: %v, want ErrSourceConflict", err)
	}
	// A local account stays local.
	if _, err := fed.Update(ctx(t), lb.Subject, func(u *users.User) error {
		u.Federation = &users.Federation{Source: "ldap", ID: "dn:uid=bob," + w.srv.People}
		return nil
	}); err == nil {
		t.Fatal("a local account was turned into an imported one")
	}
	// New local accounts may not take a name the source has.
	if _, err := fed.Create(ctx(t), users.User{Username: "Alice"}, "yet another password 1"); !errors.Is(err, users.ErrTaken) {
		t.Fatalf("creating a local alice: %v, want taken", err)
	}
	if _, err := fed.Create(ctx(t), users.User{Username: "dave", Email: "bob@acme.test"}, "yet another password 1"); !errors.Is(err, users.ErrTaken) {
		t.Fatalf("creating a local account with bob's address: %v, want taken", err)
	}
}

// First sign-ins at once import one account.
func TestConcurrentFirstSignIns(t *testing.T) {
	w := newWorld(t, nil)
	subs := make(chan string, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			u, err := w.dir.Authenticate(ctx(t), "bob", bobPW)
			if err != nil {
				t.Error(err)
				return
			}
			subs <- u.Subject
		})
	}
	wg.Wait()
	close(subs)
	seen := map[string]bool{}
	for s := range subs {
		seen[s] = true
	}
	if list, _ := w.dir.List(ctx(t)); len(seen) != 1 || len(list) != 1 {
		t.Fatalf("%d subjects, %d accounts: want one", len(seen), len(list))
	}
}

// An entry without the id attribute is known by its DN.
func TestDNWhenNoStableID(t *testing.T) {
	w := newWorld(t, func(s *ldap.Settings) { s.Attributes.ID = "employeeNumber" })
	u, err := w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if u.Federation.ID != "dn:"+w.alice {
		t.Fatalf("id %q, want the DN", u.Federation.ID)
	}
	if cur, err := w.dir.Current(ctx(t), u.Subject); err != nil || cur.Disabled {
		t.Fatalf("current: %v %+v", err, cur)
	}
	w.srv.Replace(t, w.alice, "employeeType", "disabled")
	if cur, err := w.dir.Current(ctx(t), u.Subject); err != nil || !cur.Disabled {
		t.Fatalf("disabled: %v disabled=%v", err, cur.Disabled)
	}
	// With the attribute set, the id is its value.
	w.srv.Replace(t, w.bob, "employeeNumber", "E-42")
	if b, err := w.dir.Authenticate(ctx(t), "bob", bobPW); err != nil || b.Federation.ID != "employeeNumber:"+hex.EncodeToString([]byte("E-42")) {
		t.Fatalf("bob: %v %+v", err, b.Federation)
	} else if cur, err := w.dir.Current(ctx(t), b.Subject); err != nil || cur.Disabled {
		t.Fatalf("bob by employeeNumber: %v %+v", err, cur)
	}
}

// An entry deleted and created again under the same name is another
// person: it does not get the old account.
func TestRecreatedEntryIsAnotherPerson(t *testing.T) {
	w := newWorld(t, nil)
	old, err := w.dir.Authenticate(ctx(t), "bob", bobPW)
	if err != nil {
		t.Fatal(err)
	}
	w.srv.Replace(t, "cn=staff,"+w.srv.Groups, "member", w.alice)
	w.srv.Delete(t, w.bob)
	w.srv.AddUser(t, "bob", "new bob's password 3", "bob@acme.test", "Another Bob")
	if _, err := w.dir.Authenticate(ctx(t), "bob", "new bob's password 3"); !errors.Is(err, users.ErrSourceConflict) {
		t.Fatalf("re-created bob: %v, want a clash with the old account", err)
	}
	if err := w.dir.Delete(ctx(t), old.Subject); err != nil {
		t.Fatal(err)
	}
	nb, err := w.dir.Authenticate(ctx(t), "bob", "new bob's password 3")
	if err != nil || nb.Subject == old.Subject || nb.Name != "Another Bob" {
		t.Fatalf("after deleting the old account: %v %+v", err, nb)
	}
}
