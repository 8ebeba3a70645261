package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/storetest"
)

func open(t *testing.T, path string, opt Options) *Store {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "sub", "gatehouse.db"), Options{})
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdd(ctx, "set", "m"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, Options{})
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
	if m, _ := s.SetMembers(ctx, "set"); len(m) != 1 || m[0] != "m" {
		t.Fatalf("set after reopen: %v", m)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "g.db")
	open(t, path, Options{})
	// Parents are created 0700 and the file 0600 (no umask clears owner bits).
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Dir(dir): 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
}

func TestOpenRejectsGarbageFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a garbage file succeeded")
	} else if !strings.Contains(err.Error(), "gatehouse store") {
		t.Fatalf("error without context: %v", err)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	open(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

// clock is a settable clock for the sweeper.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestSweep(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{Now: c.now, SweepInterval: time.Hour})
	for i, ttl := range []time.Duration{time.Minute, time.Minute, 0, time.Hour} {
		if err := s.Set(ctx, string(rune('a'+i)), []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Sweep(); err != nil || n != 0 {
		t.Fatalf("early sweep: %d %v", n, err)
	}
	c.add(2 * time.Minute)
	if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired record visible: %v", err)
	}
	if n, err := s.Sweep(); err != nil || n != 2 {
		t.Fatalf("sweep: %d %v, want 2", n, err)
	}
	// Really gone from the file, not only hidden.
	var keys []string
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if strings.Join(keys, ",") != "c,d" {
		t.Fatalf("keys after sweep: %v", keys)
	}
}

func TestBackgroundSweeper(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{SweepInterval: 20 * time.Millisecond})
	if err := s.Set(ctx, "k", []byte("v"), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketKV).Stats().KeyN; return nil })
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("background sweeper did not delete the expired record")
}

// putRaw writes a record directly, bypassing the expiry encoding.
func putRaw(t *testing.T, s *Store, key string, raw []byte) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKV).Put([]byte(key), raw) })
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecordIsAnError(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{SweepInterval: time.Hour})
	for _, raw := range [][]byte{{}, {1, 2}, {1, 2, 3, 4, 5, 6, 7}} {
		putRaw(t, s, "bad", raw)
		check := func(op string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), "corrupt") || errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s over a %d-byte record: %v, want a corrupt-record error", op, len(raw), err)
			}
		}
		_, err := s.Get(ctx, "bad")
		check("Get", err)
		_, err = s.Take(ctx, "bad")
		check("Take", err)
		check("Create", s.Create(ctx, "bad", []byte("x"), 0))
		called := false
		check("Update", s.Update(ctx, "bad", 0, func([]byte) ([]byte, error) { called = true; return []byte("x"), nil }))
		if called {
			t.Fatal("Update ran fn over a corrupt record")
		}
		check("Apply Absent", s.Apply(ctx, store.Put("other", nil, 0), store.Absent("bad")))
		check("Apply Match", s.Apply(ctx, store.Put("other", nil, 0), store.Match("bad", nil)))
		if _, err := s.Get(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed Apply wrote: %v", err)
		}
	}
	// A record of exactly the header is a valid empty value.
	putRaw(t, s, "empty", make([]byte, headerLen))
	if v, err := s.Get(ctx, "empty"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("header-only record: %q %v", v, err)
	}
	// Set and Delete repair; Sweep removes corrupt records.
	must(t, s.Set(ctx, "bad", []byte("good"), 0))
	if v, err := s.Get(ctx, "bad"); err != nil || string(v) != "good" {
		t.Fatalf("Set over a corrupt record: %q %v", v, err)
	}
	putRaw(t, s, "bad", []byte{1})
	must(t, s.Delete(ctx, "bad"))
	putRaw(t, s, "bad", []byte{1})
	if n, err := s.Sweep(); err != nil || n != 1 {
		t.Fatalf("Sweep of a corrupt record: %d %v, want 1", n, err)
	}
	if _, err := s.Get(ctx, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("corrupt record after Sweep: %v", err)
	}
}

func TestKeyValidation(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{})
	errs := map[string]error{
		"Get":        func() error { _, err := s.Get(ctx, ""); return err }(),
		"Set":        s.Set(ctx, "", []byte("v"), 0),
		"Create":     s.Create(ctx, "", []byte("v"), 0),
		"Delete":     s.Delete(ctx, ""),
		"Update":     s.Update(ctx, "", 0, func(o []byte) ([]byte, error) { return o, nil }),
		"SetAdd":     s.SetAdd(ctx, "", "m"),
		"Publish":    s.Publish(ctx, "", nil),
		"SetNUL":     s.SetAdd(ctx, "a\x00b", "c"),
		"MembersNUL": func() error { _, err := s.SetMembers(ctx, "a\x00"); return err }(),
		"Apply":      s.Apply(ctx, store.Put("", []byte("v"), 0)),
		"ApplyNUL":   s.Apply(ctx, store.SetAdd("a\x00b", "c")),
		"ApplyRmNUL": s.Apply(ctx, store.SetRemove("a\x00b", "c")),
	}
	for op, err := range errs {
		if err == nil || !strings.HasPrefix(err.Error(), "gatehouse store:") {
			t.Errorf("%s with an invalid key: %v", op, err)
		}
	}
	// Members may contain NUL and be empty: only set names may not.
	must(t, s.SetAdd(ctx, "a", "b\x00c", ""))
	if m, err := s.SetMembers(ctx, "a"); err != nil || len(m) != 2 || m[0] != "" || m[1] != "b\x00c" {
		t.Fatalf("members %q %v", m, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
}

func TestExpiryUsesInjectedClock(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{Now: c.now, SweepInterval: time.Hour})
	must(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	must(t, s.SetAdd(ctx, "set", "m"))
	c.add(59 * time.Second)
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("before expiry: %q %v", v, err)
	}
	c.add(time.Second) // exactly at the expiry: gone
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("at expiry: %v", err)
	}
	must(t, s.Apply(ctx, store.Absent("k"), store.Match("k", nil)))
	if err := s.Create(ctx, "k", []byte("new"), 0); err != nil {
		t.Fatalf("Create over an expired record: %v", err)
	}
	// Apply writes expiries on the same clock.
	must(t, s.Apply(ctx, store.Put("a", []byte("1"), time.Minute)))
	c.add(time.Minute)
	if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Apply's Put at expiry: %v", err)
	}
	c.add(24 * time.Hour)
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "new" {
		t.Fatalf("no-expiry record: %q %v", v, err)
	}
	if m, _ := s.SetMembers(ctx, "set"); len(m) != 1 {
		t.Fatalf("sets do not expire: %v", m)
	}
}

func TestPublishDropsForSlowSubscriber(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{})
	slow, err := s.Subscribe(ctx, "ch")
	must(t, err)
	for i := range subBuffer + 10 {
		if err := s.Publish(ctx, "ch", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if d := s.Dropped(); d != 10 {
		t.Fatalf("Dropped() = %d, want 10", d)
	}
	// The first subBuffer messages arrived, in order.
	for i := range subBuffer {
		if m := <-slow; len(m) != 1 || m[0] != byte(i) {
			t.Fatalf("message %d = %v", i, m)
		}
	}
}

func TestCloseClosesSubscriptionsAtOnce(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "g.db"), Options{})
	must(t, err)
	ch, err := s.Subscribe(context.Background(), "ch")
	must(t, err)
	must(t, s.Close())
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("message after Close")
		}
	default:
		t.Fatal("subscription still open when Close returned")
	}
	if _, err := s.Sweep(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Sweep after Close: %v", err)
	}
}

// TestCloseDuringUse closes the store under concurrent callers: every call
// either succeeds or returns ErrClosed, and nothing panics or races.
func TestCloseDuringUse(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "g.db"), Options{SweepInterval: time.Millisecond})
	must(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				var err error
				switch j % 4 {
				case 0:
					err = s.Set(ctx, "k", []byte("v"), time.Millisecond)
				case 1:
					_, err = s.Take(ctx, "k")
				case 2:
					err = s.Publish(ctx, "ch", []byte("m"))
				case 3:
					var ch <-chan []byte
					if ch, err = s.Subscribe(ctx, "ch"); err == nil && i%2 == 0 {
						go func() {
							for range ch {
							}
						}()
					}
				}
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	must(t, s.Close())
	wg.Wait()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
