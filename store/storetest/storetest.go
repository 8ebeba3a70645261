// Package storetest is the conformance suite every store.Store backend
// must pass. A backend's test calls Run with a constructor that returns a
// fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// shortTTL is the TTL of records a case waits to see expire. TTL cases use
// real time (a shared backend cannot be given a fake clock).
const shortTTL = 100 * time.Millisecond

// Run runs the conformance suite. newStore must return a fresh, empty
// store for each subtest; closing it at the end of the subtest is up to
// newStore (t.Cleanup). Close must tolerate a store the suite already
// closed. The whole suite takes about a second.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("GetSetDelete", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
		must(t, s.Set(ctx, "k", []byte("v1"), 0))
		mustGet(t, s, "k", "v1")
		must(t, s.Set(ctx, "k", []byte("v2"), 0))
		mustGet(t, s, "k", "v2")
		must(t, s.Set(ctx, "empty", []byte{}, 0))
		if v, err := s.Get(ctx, "empty"); err != nil || len(v) != 0 {
			t.Fatalf("empty value: %q %v", v, err)
		}
		must(t, s.Delete(ctx, "k"))
		if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		must(t, s.Delete(ctx, "k")) // deleting a missing key is fine
		// Binary-safe values and keys with separators.
		bin := []byte{0, 1, 2, 255, 0}
		must(t, s.Set(ctx, "a:b\x00c", bin, 0))
		if v, _ := s.Get(ctx, "a:b\x00c"); !bytes.Equal(v, bin) {
			t.Fatalf("binary value %v", v)
		}
	})
	t.Run("ReturnedSliceIsACopy", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "k", []byte("abc"), 0))
		v, _ := s.Get(ctx, "k")
		v[0] = 'X'
		mustGet(t, s, "k", "abc")
	})
	t.Run("TTL", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "short", []byte("x"), shortTTL))
		must(t, s.Set(ctx, "long", []byte("y"), time.Hour))
		must(t, s.Set(ctx, "forever", []byte("z"), 0))
		must(t, s.Set(ctx, "negative", []byte("n"), -time.Second)) // <= 0: no expiry
		// Set replaces the TTL along with the value.
		must(t, s.Set(ctx, "renewed", []byte("r1"), shortTTL))
		must(t, s.Set(ctx, "renewed", []byte("r2"), 0))
		must(t, s.Set(ctx, "shortened", []byte("s1"), 0))
		must(t, s.Set(ctx, "shortened", []byte("s2"), shortTTL))
		mustGet(t, s, "short", "x")
		waitGone(t, s, "short")
		waitGone(t, s, "shortened")
		mustGet(t, s, "long", "y")
		mustGet(t, s, "forever", "z")
		mustGet(t, s, "negative", "n")
		mustGet(t, s, "renewed", "r2")
		if _, err := s.Take(ctx, "short"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Take expired: %v, want ErrNotFound", err)
		}
		must(t, s.Delete(ctx, "short")) // deleting an expired key is fine
	})
	t.Run("Create", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Create(ctx, "k", []byte("first"), 0))
		if err := s.Create(ctx, "k", []byte("second"), 0); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second Create: %v, want ErrExists", err)
		}
		mustGet(t, s, "k", "first")
		must(t, s.Create(ctx, "exp", []byte("old"), shortTTL))
		waitGone(t, s, "exp")
		must(t, s.Create(ctx, "exp", []byte("new"), 0)) // expired: free again
		mustGet(t, s, "exp", "new")
	})
	t.Run("CreateConcurrent", func(t *testing.T) {
		s := newStore(t)
		var wins atomic.Int32
		parallel(16, func(i int) {
			if err := s.Create(ctx, "race", []byte(strconv.Itoa(i)), 0); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrExists) {
				t.Error(err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d Creates succeeded, want 1", wins.Load())
		}
	})
	t.Run("Take", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "code", []byte("v"), time.Minute))
		v, err := s.Take(ctx, "code")
		if err != nil || string(v) != "v" {
			t.Fatalf("Take: %q %v", v, err)
		}
		if _, err := s.Take(ctx, "code"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second Take: %v", err)
		}
		if _, err := s.Get(ctx, "code"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Take: %v", err)
		}
	})
	t.Run("TakeConcurrent", func(t *testing.T) {
		s := newStore(t)
		for round := range 5 {
			key := fmt.Sprintf("code-%d", round)
			must(t, s.Set(ctx, key, []byte("v"), time.Minute))
			var wins atomic.Int32
			parallel(16, func(int) {
				_, err := s.Take(ctx, key)
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
				}
			})
			if wins.Load() != 1 {
				t.Fatalf("round %d: %d Takes won, want exactly 1", round, wins.Load())
			}
		}
	})
	t.Run("Update", func(t *testing.T) {
		s := newStore(t)
		// Absent key: fn sees nil.
		must(t, s.Update(ctx, "k", 0, func(old []byte) ([]byte, error) {
			if old != nil {
				t.Errorf("old = %q, want nil", old)
			}
			return []byte("1"), nil
		}))
		mustGet(t, s, "k", "1")
		must(t, s.Update(ctx, "k", 0, func(old []byte) ([]byte, error) { return append(old, '2'), nil }))
		mustGet(t, s, "k", "12")
		boom := errors.New("boom")
		if err := s.Update(ctx, "k", 0, func([]byte) ([]byte, error) { return []byte("no"), boom }); !errors.Is(err, boom) {
			t.Fatalf("Update error: %v", err)
		}
		mustGet(t, s, "k", "12")
		must(t, s.Update(ctx, "k", 0, func([]byte) ([]byte, error) { return nil, nil }))
		if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Update to nil did not delete: %v", err)
		}
		// TTL applies to the new value.
		must(t, s.Update(ctx, "t", shortTTL, func([]byte) ([]byte, error) { return []byte("x"), nil }))
		waitGone(t, s, "t")
		// An expired value is seen as absent.
		must(t, s.Update(ctx, "t", 0, func(old []byte) ([]byte, error) {
			if old != nil {
				t.Errorf("expired value visible to Update: %q", old)
			}
			return []byte("y"), nil
		}))
		mustGet(t, s, "t", "y")
		// ttl 0 on Update removes an earlier expiry.
		must(t, s.Set(ctx, "keep", []byte("a"), shortTTL))
		must(t, s.Update(ctx, "keep", 0, func(old []byte) ([]byte, error) { return append(old, 'b'), nil }))
		// An empty value is present: fn sees a non-nil empty slice, and
		// returning an empty (non-nil) slice stores it.
		must(t, s.Set(ctx, "empty", []byte{}, 0))
		must(t, s.Update(ctx, "empty", 0, func(old []byte) ([]byte, error) {
			if old == nil || len(old) != 0 {
				t.Errorf("empty value seen by Update as %v (nil=%t), want a non-nil empty slice", old, old == nil)
			}
			return []byte{}, nil
		}))
		if v, err := s.Get(ctx, "empty"); err != nil || len(v) != 0 {
			t.Fatalf("Update to an empty value: %q %v, want it stored", v, err)
		}
		// A nil result for a missing key is a no-op, not an error.
		must(t, s.Update(ctx, "never", 0, func([]byte) ([]byte, error) { return nil, nil }))
		if _, err := s.Get(ctx, "never"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after nil Update of a missing key: %v", err)
		}
		// An error from fn over a missing key creates nothing.
		if err := s.Update(ctx, "never", 0, func([]byte) ([]byte, error) { return []byte("x"), boom }); !errors.Is(err, boom) {
			t.Fatalf("Update error on missing key: %v", err)
		}
		if _, err := s.Get(ctx, "never"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("failed Update created the key: %v", err)
		}
		time.Sleep(shortTTL + 50*time.Millisecond)
		mustGet(t, s, "keep", "ab")
	})
	t.Run("UpdateConcurrent", func(t *testing.T) {
		s := newStore(t)
		const n = 32
		parallel(n, func(int) {
			err := s.Update(ctx, "counter", 0, func(old []byte) ([]byte, error) {
				c := 0
				if old != nil {
					var err error
					if c, err = strconv.Atoi(string(old)); err != nil {
						return nil, err
					}
				}
				return []byte(strconv.Itoa(c + 1)), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
		mustGet(t, s, "counter", strconv.Itoa(n))
	})
	t.Run("Sets", func(t *testing.T) {
		s := newStore(t)
		if m, err := s.SetMembers(ctx, "none"); err != nil || len(m) != 0 {
			t.Fatalf("missing set: %v %v", m, err)
		}
		must(t, s.SetAdd(ctx, "s", "b", "a", "c"))
		must(t, s.SetAdd(ctx, "s", "a"))
		must(t, s.SetAdd(ctx, "s2", "z"))
		must(t, s.SetAdd(ctx, "s-longer", "y"))
		mustMembers(t, s, "s", "a", "b", "c")
		must(t, s.SetAdd(ctx, "s")) // no members: no-op
		must(t, s.SetRemove(ctx, "none", "x"))
		mustMembers(t, s, "none")
		must(t, s.SetRemove(ctx, "s", "b", "missing"))
		mustMembers(t, s, "s", "a", "c")
		mustMembers(t, s, "s2", "z")
		mustMembers(t, s, "s-longer", "y")
		must(t, s.SetRemove(ctx, "s", "a", "c"))
		mustMembers(t, s, "s")
		// Lexical (byte) order, not numeric or case-folded.
		must(t, s.SetAdd(ctx, "order", "9", "10", "b", "B", "a:1", "a"))
		mustMembers(t, s, "order", "10", "9", "B", "a", "a:1", "b")
		// Sets and keys live apart.
		if _, err := s.Get(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a set is visible as a key: %v", err)
		}
		must(t, s.Set(ctx, "kv", []byte("v"), 0))
		mustMembers(t, s, "kv")
	})
	t.Run("SetsConcurrent", func(t *testing.T) {
		s := newStore(t)
		parallel(16, func(i int) {
			if err := s.SetAdd(ctx, "s", fmt.Sprintf("m%02d", i), "shared"); err != nil {
				t.Error(err)
			}
		})
		got, err := s.SetMembers(ctx, "s")
		must(t, err)
		if len(got) != 17 || got[0] != "m00" || got[15] != "m15" || got[16] != "shared" {
			t.Fatalf("members after concurrent adds: %v", got)
		}
	})
	t.Run("PubSub", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Publish(ctx, "nobody", []byte("x"))) // no subscribers: fine
		sctx, cancel := context.WithCancel(ctx)
		ch, err := s.Subscribe(sctx, "ch")
		must(t, err)
		other, err := s.Subscribe(ctx, "other")
		must(t, err)
		// Shared backends deliver asynchronously; allow subscription setup.
		time.Sleep(50 * time.Millisecond)
		for i := range 3 {
			must(t, s.Publish(ctx, "ch", []byte(strconv.Itoa(i))))
		}
		for i := range 3 {
			select {
			case m := <-ch:
				if string(m) != strconv.Itoa(i) {
					t.Fatalf("message %d = %q", i, m)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("message %d not delivered", i)
			}
		}
		select {
		case m := <-other:
			t.Fatalf("message leaked to another channel: %q", m)
		case <-time.After(50 * time.Millisecond):
		}
		cancel()
		waitClosed(t, ch, "subscription after ctx cancel")
		// The other subscription and the store still work.
		must(t, s.Publish(ctx, "ch", []byte("after")))
		must(t, s.Publish(ctx, "other", []byte("o")))
		select {
		case m := <-other:
			if string(m) != "o" {
				t.Fatalf("other got %q", m)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("other subscription stopped working")
		}
	})
	t.Run("PubSubFanOut", func(t *testing.T) {
		s := newStore(t)
		a, err := s.Subscribe(ctx, "ch")
		must(t, err)
		b, err := s.Subscribe(ctx, "ch")
		must(t, err)
		time.Sleep(50 * time.Millisecond)
		must(t, s.Publish(ctx, "ch", []byte("hello")))
		for i, ch := range []<-chan []byte{a, b} {
			select {
			case m := <-ch:
				if string(m) != "hello" {
					t.Fatalf("subscriber %d got %q", i, m)
				}
				m[0] = 'X' // must not affect the other subscriber's copy
			case <-time.After(2 * time.Second):
				t.Fatalf("subscriber %d got nothing", i)
			}
		}
	})
	t.Run("SubscribeCancelledContext", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ch, err := s.Subscribe(cctx, "ch")
		if err != nil {
			return // refusing a done context is fine too
		}
		waitClosed(t, ch, "subscription with a cancelled context")
	})
	runApply(t, newStore)
	runScan(t, newStore)
	t.Run("Ping", func(t *testing.T) {
		must(t, newStore(t).Ping(ctx))
	})
	t.Run("Close", func(t *testing.T) {
		s := newStore(t)
		ch, err := s.Subscribe(ctx, "ch")
		must(t, err)
		must(t, s.Close())
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		waitClosed(t, ch, "subscription after Close")
		noop := func(old []byte) ([]byte, error) { return old, nil }
		calls := map[string]func() error{
			"Get":        func() error { _, err := s.Get(ctx, "k"); return err },
			"Set":        func() error { return s.Set(ctx, "k", []byte("v"), 0) },
			"Create":     func() error { return s.Create(ctx, "k", []byte("v"), 0) },
			"Delete":     func() error { return s.Delete(ctx, "k") },
			"Take":       func() error { _, err := s.Take(ctx, "k"); return err },
			"Update":     func() error { return s.Update(ctx, "k", 0, noop) },
			"SetAdd":     func() error { return s.SetAdd(ctx, "s", "m") },
			"SetRemove":  func() error { return s.SetRemove(ctx, "s", "m") },
			"SetMembers": func() error { _, err := s.SetMembers(ctx, "s"); return err },
			"Apply":      func() error { return s.Apply(ctx, store.Put("k", []byte("v"), 0)) },
			"ApplyEmpty": func() error { return s.Apply(ctx) },
			"Publish":    func() error { return s.Publish(ctx, "ch", []byte("m")) },
			"Subscribe":  func() error { _, err := s.Subscribe(ctx, "ch"); return err },
			"Ping":       func() error { return s.Ping(ctx) },
			"Scan":       func() error { return s.Scan(ctx, "", func(store.Record) error { return nil }) },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, store.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, s store.Store, key, want string) {
	t.Helper()
	v, err := s.Get(context.Background(), key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
}

func mustMembers(t *testing.T, s store.Store, set string, want ...string) {
	t.Helper()
	got, err := s.SetMembers(context.Background(), set)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || got == nil {
		t.Fatalf("SetMembers(%q) = %v, %v; want %v", set, got, err, want)
	}
}

// waitGone polls until key has expired (at most 3s).
func waitGone(t *testing.T, s store.Store, key string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Get(context.Background(), key); errors.Is(err, store.ErrNotFound) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q did not expire", key)
}

// waitClosed drains ch until it is closed (at most 2s).
func waitClosed(t *testing.T, ch <-chan []byte, what string) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: channel not closed", what)
		}
	}
}

// parallel runs fn(0..n-1) in n goroutines released together.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
