package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
)

// These tests hold the directory to "a record and its indexes are written
// together or not at all" (SECURITY.md, half-done writes): a crash between
// store calls, a store that fails, or a concurrent writer must never leave
// a user that can sign in but is not listed, a name reserved by no one,
// or an update lost.

var errInjected = errors.New("injected store failure")

// faultStore wraps a store and fails chosen write calls (doing nothing
// for them), to model a process killed between two writes or a store
// that errors. Reads always pass.
type faultStore struct {
	store.Store
	mu     sync.Mutex
	writes int
	// fail reports whether the n-th write call (counting from 1 over the
	// store's life) of the given method fails; nil fails nothing.
	fail func(n int, method string) bool
}

func (f *faultStore) write(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.fail != nil && f.fail(f.writes, method) {
		return fmt.Errorf("%s: %w", method, errInjected)
	}
	return nil
}

// crashAfter makes every write after the next k fail, as if the process
// died there; crashAfter(-1) is the restart: everything works again.
func (f *faultStore) crashAfter(k int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k < 0 {
		f.fail = nil
		return
	}
	last := f.writes + k
	f.fail = func(n int, _ string) bool { return n > last }
}

func (f *faultStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := f.write("Set"); err != nil {
		return err
	}
	return f.Store.Set(ctx, key, value, ttl)
}

func (f *faultStore) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := f.write("Create"); err != nil {
		return err
	}
	return f.Store.Create(ctx, key, value, ttl)
}

func (f *faultStore) Delete(ctx context.Context, key string) error {
	if err := f.write("Delete"); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

func (f *faultStore) Take(ctx context.Context, key string) ([]byte, error) {
	if err := f.write("Take"); err != nil {
		return nil, err
	}
	return f.Store.Take(ctx, key)
}

func (f *faultStore) Update(ctx context.Context, key string, ttl time.Duration, fn func([]byte) ([]byte, error)) error {
	if err := f.write("Update"); err != nil {
		return err
	}
	return f.Store.Update(ctx, key, ttl, fn)
}

func (f *faultStore) SetAdd(ctx context.Context, set string, members ...string) error {
	if err := f.write("SetAdd"); err != nil {
		return err
	}
	return f.Store.SetAdd(ctx, set, members...)
}

func (f *faultStore) SetRemove(ctx context.Context, set string, members ...string) error {
	if err := f.write("SetRemove"); err != nil {
		return err
	}
	return f.Store.SetRemove(ctx, set, members...)
}

func (f *faultStore) Apply(ctx context.Context, ops ...store.Op) error {
	if err := f.write("Apply"); err != nil {
		return err
	}
	return f.Store.Apply(ctx, ops...)
}

func newFaultDir(t *testing.T) (*Directory, *memstore.Store, *faultStore) {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	fs := &faultStore{Store: st}
	return New(fs, nil), st, fs
}

// checkConsistent fails the test unless st holds whole users only: every
// record is listed and found by its username and email, every index key
// and set member belongs to a record that claims it, and no username of
// one account is another account's email.
func checkConsistent(t *testing.T, st *memstore.Store) {
	t.Helper()
	ctx := context.Background()
	members, err := st.SetMembers(ctx, setUsers)
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]User{}
	want := map[string]string{} // index key -> subject
	for _, k := range st.Keys(keyUser) {
		sub := strings.TrimPrefix(k, keyUser)
		b, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var u User
		if err := json.Unmarshal(b, &u); err != nil {
			t.Fatalf("record %s: %v", k, err)
		}
		if u.Subject != sub {
			t.Errorf("record %s holds subject %q", k, u.Subject)
		}
		records[sub] = u
		if !slices.Contains(members, sub) {
			t.Errorf("user %q (%s) has a record but is not listed", u.Username, sub)
		}
		want[keyName+fold(u.Username)] = sub
		if e := claimed(u); e != "" {
			want[keyEmail+fold(e)] = sub
		}
		if e := pending(u); e != "" {
			if m, _ := st.SetMembers(ctx, setPending+fold(e)); !slices.Contains(m, sub) {
				t.Errorf("inactive user %q is not among those naming %s", u.Username, e)
			}
		}
	}
	for _, m := range members {
		if _, ok := records[m]; !ok {
			t.Errorf("listed subject %s has no record", m)
		}
	}
	got := map[string]string{}
	for _, k := range append(st.Keys(keyName), st.Keys(keyEmail)...) {
		v, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		got[k] = string(v)
	}
	for k, sub := range want {
		if got[k] != sub {
			t.Errorf("index %s = %q, want %q (user %q)", k, got[k], sub, records[sub].Username)
		}
	}
	for k, sub := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("orphan index %s -> %q: no user claims it", k, sub)
		}
	}
	for k, sub := range got {
		login, ok := strings.CutPrefix(k, keyName)
		if !ok {
			continue
		}
		if other, ok := got[keyEmail+login]; ok && other != sub {
			t.Errorf("%q is the username of %s and the email of %s", login, sub, other)
		}
	}
}

// A Create cut short at any write leaves no trace, and the names are free
// again after the "restart"; one that got through is whole.
func TestCreateCrashAllOrNothing(t *testing.T) {
	ctx := context.Background()
	for k := 0; k <= 5; k++ {
		t.Run(fmt.Sprintf("crash after %d writes", k), func(t *testing.T) {
			d, st, fs := newFaultDir(t)
			fs.crashAfter(k)
			u, err := d.Create(ctx, User{Username: "Alice", Email: "alice@example.com", Groups: []string{"g"}}, "")
			fs.crashAfter(-1)
			checkConsistent(t, st)
			if err != nil {
				if !errors.Is(err, errInjected) {
					t.Fatalf("Create = %v, want the store's error", err)
				}
				if n := st.Len(); n != 0 {
					t.Fatalf("a failed Create left %d keys: %v", n, st.Keys(""))
				}
				if m, _ := st.SetMembers(ctx, setUsers); len(m) != 0 {
					t.Fatalf("a failed Create left set members %v", m)
				}
				if u, err = d.Create(ctx, User{Username: "alice", Email: "ALICE@example.com"}, ""); err != nil {
					t.Fatalf("names not free after a failed Create: %v", err)
				}
			}
			for _, login := range []string{"alice", "alice@example.com"} {
				if got := mustLookup(t, d, login); got.Subject != u.Subject {
					t.Errorf("Lookup(%q) = %s, want %s", login, got.Subject, u.Subject)
				}
			}
			if list, err := d.List(ctx); err != nil || len(list) != 1 || list[0].Subject != u.Subject {
				t.Errorf("List = %v, %v; want the one user", list, err)
			}
			checkConsistent(t, st)
		})
	}
}

// An Update cut short at any write leaves the user either as before or
// as after, never in between.
func TestUpdateCrashAllOrNothing(t *testing.T) {
	ctx := context.Background()
	for k := 0; k <= 6; k++ {
		t.Run(fmt.Sprintf("crash after %d writes", k), func(t *testing.T) {
			d, st, fs := newFaultDir(t)
			a, err := d.Create(ctx, User{Username: "alice", Email: "a@example.com", Name: "Alice"}, "")
			if err != nil {
				t.Fatal(err)
			}
			fs.crashAfter(k)
			_, err = d.Update(ctx, a.Subject, func(u *User) error {
				u.Username, u.Email, u.Name = "alicia", "new@example.com", "Alicia"
				return nil
			})
			fs.crashAfter(-1)
			checkConsistent(t, st)
			if err != nil && !errors.Is(err, errInjected) {
				t.Fatalf("Update = %v, want nil or the store's error", err)
			}
			got, gerr := d.Get(ctx, a.Subject)
			if gerr != nil {
				t.Fatal(gerr)
			}
			freed, held := []string{"alice", "a@example.com"}, []string{"alicia", "new@example.com"}
			wantName := "Alicia"
			if err != nil {
				freed, held = held, freed
				wantName = "Alice"
			}
			if got.Name != wantName {
				t.Errorf("after Update = %v the record is %+v", err, got)
			}
			for _, login := range held {
				if u := mustLookup(t, d, login); u.Subject != a.Subject {
					t.Errorf("Lookup(%q) = %s", login, u.Subject)
				}
			}
			// The names the user does not hold are free for anyone.
			if _, err := d.Create(ctx, User{Username: freed[0], Email: freed[1]}, ""); err != nil {
				t.Errorf("names %v not free: %v", freed, err)
			}
			checkConsistent(t, st)
		})
	}
}

// A refused Update writes nothing at all, so it needs no clean-up that
// could itself fail: here every Delete of the store fails.
func TestUpdateRefusedWritesNothing(t *testing.T) {
	ctx := context.Background()
	d, st, fs := newFaultDir(t)
	a, _ := d.Create(ctx, User{Username: "alice", Email: "a@example.com"}, "")
	if _, err := d.Create(ctx, User{Username: "bob", Email: "b@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, User{Username: "carol@example.org"}, ""); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		var b strings.Builder
		for _, k := range st.Keys("") {
			v, _ := st.Get(ctx, k)
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		m, _ := st.SetMembers(ctx, setUsers)
		fmt.Fprintf(&b, "users=%v\n", m)
		return b.String()
	}
	before := dump()
	fs.fail = func(_ int, method string) bool { return method == "Delete" }
	for name, fn := range map[string]func(*User) error{
		"username taken":                 func(u *User) error { u.Username = "BOB"; return nil },
		"email taken":                    func(u *User) error { u.Email = "B@example.com"; return nil },
		"free username, email taken":     func(u *User) error { u.Username = "alicia"; u.Email = "b@example.com"; return nil },
		"username taken, free email":     func(u *User) error { u.Username = "bob"; u.Email = "free@example.com"; return nil },
		"username is another's email":    func(u *User) error { u.Username = "b@example.com"; return nil },
		"free username, another's email": func(u *User) error { u.Username = "alicia"; u.Email = "B@EXAMPLE.COM"; return nil },
		"email is another's username":    func(u *User) error { u.Username = "alicia"; u.Email = "Carol@example.org"; return nil },
	} {
		if _, err := d.Update(ctx, a.Subject, fn); !errors.Is(err, ErrTaken) {
			t.Errorf("%s: Update = %v, want ErrTaken", name, err)
		}
		if after := dump(); after != before {
			t.Errorf("%s: a refused Update changed the store:\nbefore\n%s\nafter\n%s", name, before, after)
			before = after
		}
	}
	fs.fail = nil
	checkConsistent(t, st)
	if _, err := d.Create(ctx, User{Username: "alicia", Email: "free@example.com"}, ""); err != nil {
		t.Fatalf("names tried by refused updates are not free: %v", err)
	}
}

// Concurrent Updates of one user are serialised: none is lost.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	d, st, _ := newFaultDir(t)
	a, err := d.Create(ctx, User{Username: "alice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		wg    sync.WaitGroup
		calls atomic.Int32
	)
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := d.Update(ctx, a.Subject, func(u *User) error {
				calls.Add(1)
				time.Sleep(time.Millisecond)
				u.Groups = append(u.Groups, fmt.Sprintf("g%02d", i))
				return nil
			})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	got, err := d.Get(ctx, a.Subject)
	if err != nil {
		t.Fatal(err)
	}
	groups := slices.Sorted(slices.Values(got.Groups))
	if len(groups) != n || len(slices.Compact(slices.Clone(groups))) != n {
		t.Fatalf("%d concurrent updates left groups %v", n, groups)
	}
	// fn runs again for every lost race (documented on Update).
	t.Logf("fn ran %d times for %d updates", calls.Load(), n)
	checkConsistent(t, st)
}

// Creates and Updates racing for one login name (as a username or as an
// email, which must not shadow each other): exactly one gets it, the
// others are told ErrTaken and leave nothing behind.
func TestConcurrentClaimsOneWinner(t *testing.T) {
	ctx := context.Background()
	const login = "same@example.com"
	for round := range 30 {
		d, st, _ := newFaultDir(t)
		bob, _ := d.Create(ctx, User{Username: "bob"}, "")
		carol, _ := d.Create(ctx, User{Username: "carol", Email: "carol@example.com"}, "")
		claims := []func() (string, error){
			func() (string, error) {
				u, err := d.Update(ctx, bob.Subject, func(u *User) error { u.Username = "SAME@example.com"; return nil })
				return u.Subject, err
			},
			func() (string, error) {
				u, err := d.Update(ctx, carol.Subject, func(u *User) error { u.Email = "Same@Example.com"; return nil })
				return u.Subject, err
			},
		}
		for i := range 4 {
			claims = append(claims,
				func() (string, error) {
					u, err := d.Create(ctx, User{Username: login}, "")
					return u.Subject, err
				},
				func() (string, error) {
					u, err := d.Create(ctx, User{Username: fmt.Sprintf("u%d", i), Email: login}, "")
					return u.Subject, err
				},
				func() (string, error) {
					u, err := d.Create(ctx, User{Username: login, Email: fmt.Sprintf("u%d@example.com", i)}, "")
					return u.Subject, err
				})
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
		)
		start := make(chan struct{})
		for _, claim := range claims {
			wg.Go(func() {
				<-start
				sub, err := claim()
				if err != nil && !errors.Is(err, ErrTaken) {
					t.Errorf("claim: %v", err)
				}
				if err == nil {
					mu.Lock()
					winners = append(winners, sub)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d claims of %q succeeded, want exactly 1", round, len(winners), login)
		}
		if u := mustLookup(t, d, login); u.Subject != winners[0] {
			t.Fatalf("round %d: %q finds %s, not the winner %s", round, login, u.Subject, winners[0])
		}
		checkConsistent(t, st)
		if t.Failed() {
			t.Fatalf("round %d: inconsistent store", round)
		}
	}
}

// conflictStore refuses every batch as if another writer always got there
// first.
type conflictStore struct{ store.Store }

func (conflictStore) Apply(context.Context, ...store.Op) error { return store.ErrConflict }

// Update retries a lost race with a fresh copy, a bounded number of
// times, and gives up with an error that says why.
func TestUpdateGivesUp(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	a, err := New(st, nil).Create(ctx, User{Username: "alice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	d := New(conflictStore{st}, nil)
	calls := 0
	_, err = d.Update(ctx, a.Subject, func(u *User) error {
		calls++
		if u.Name != "" {
			t.Errorf("call %d got a copy changed by an earlier call: %+v", calls, u)
		}
		u.Name = "changed"
		return nil
	})
	if !errors.Is(err, store.ErrConflict) || calls != maxUpdateAttempts {
		t.Fatalf("Update = %v after %d calls of fn, want store.ErrConflict after %d", err, calls, maxUpdateAttempts)
	}
	if got, _ := New(st, nil).Get(ctx, a.Subject); got.Name != "" {
		t.Fatalf("a given-up update was saved: %+v", got)
	}
	// A cancelled context ends the retries at once.
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	_, err = d.Update(cctx, a.Subject, func(*User) error { calls++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("cancelled Update = %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

// An account may take its own email as username (and the reverse): only
// another account's names are refused.
func TestUpdateMayShadowOwnNames(t *testing.T) {
	ctx := context.Background()
	d, st, _ := newFaultDir(t)
	a, _ := d.Create(ctx, User{Username: "alice", Email: "alice@example.com"}, "")
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Username = "Alice@Example.com"; return nil }); err != nil {
		t.Fatalf("username set to the account's own email: %v", err)
	}
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Email = "other@example.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(ctx, a.Subject, func(u *User) error { u.Email = "ALICE@example.com"; return nil }); err != nil {
		t.Fatalf("email set to the account's own username: %v", err)
	}
	for _, login := range []string{"alice@example.com", "ALICE@EXAMPLE.COM"} {
		if u := mustLookup(t, d, login); u.Subject != a.Subject {
			t.Fatalf("Lookup(%q) = %s", login, u.Subject)
		}
	}
	for _, gone := range []string{"alice", "other@example.com"} {
		if _, err := d.Lookup(ctx, gone); !errors.Is(err, ErrNotFound) {
			t.Errorf("released name %q: %v", gone, err)
		}
	}
	checkConsistent(t, st)
}
