package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// runApply is the part of Run for Store.Apply. Every failing batch here
// puts writes before the failing condition, so a backend that checks
// conditions while it writes, rather than all of them first, leaves
// traces the cases look for.
func runApply(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("ApplyAllOrNothing", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Apply(ctx)) // empty batch: no-op
		must(t, s.Apply(ctx,
			store.Create("user:1", []byte("alice"), 0),
			store.Create("name:alice", []byte("1"), 0),
			store.SetAdd("users", "1")))
		mustGet(t, s, "user:1", "alice")
		mustGet(t, s, "name:alice", "1")
		mustMembers(t, s, "users", "1")
		err := s.Apply(ctx,
			store.Put("user:1", []byte("changed"), 0),
			store.Create("user:2", []byte("bob"), 0),
			store.SetAdd("users", "2"),
			store.Delete("name:alice"),
			store.SetRemove("users", "1"),
			store.Create("name:alice", []byte("2"), 0)) // taken
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("batch with a Create of a live key: %v, want ErrExists", err)
		}
		mustGet(t, s, "user:1", "alice")
		mustMissing(t, s, "user:2")
		mustGet(t, s, "name:alice", "1")
		mustMembers(t, s, "users", "1")
	})
	t.Run("ApplyConditions", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "live", []byte("v1"), time.Hour))
		must(t, s.Set(ctx, "empty", []byte{}, 0))
		must(t, s.SetAdd(ctx, "set", "m"))
		// Absent: missing keys pass (a set of that name is no key); it
		// writes nothing.
		must(t, s.Apply(ctx, store.Absent("missing"), store.Absent("set"), store.Put("a", []byte("1"), 0)))
		mustGet(t, s, "a", "1")
		mustMissing(t, s, "missing")
		if err := s.Apply(ctx, store.Put("b", []byte("x"), 0), store.Absent("live")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Absent of a live key: %v, want ErrExists", err)
		}
		if err := s.Apply(ctx, store.Put("b", []byte("x"), 0), store.Absent("empty")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Absent of an empty value: %v, want ErrExists", err)
		}
		mustMissing(t, s, "b")
		// Match on the current value: a compare-and-swap.
		must(t, s.Apply(ctx, store.Match("live", []byte("v1")), store.Put("live", []byte("v2"), 0)))
		mustGet(t, s, "live", "v2")
		conflicts := map[string][]store.Op{
			"stale value":   {store.Match("live", []byte("v1"))},
			"prefix":        {store.Match("live", []byte("v"))},
			"longer":        {store.Match("live", []byte("v2 "))},
			"nil of live":   {store.Match("live", nil)},
			"nil of empty":  {store.Match("empty", nil)},
			"missing":       {store.Match("missing", []byte{})},
			"set as key":    {store.Match("set", []byte{})},
			"second of two": {store.Match("live", []byte("v2")), store.Match("a", []byte("2"))},
		}
		for name, ops := range conflicts {
			ops = append([]store.Op{store.Put("live", []byte("v3"), 0), store.SetAdd("set", "n")}, ops...)
			if err := s.Apply(ctx, ops...); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Match (%s): %v, want ErrConflict", name, err)
			}
		}
		mustGet(t, s, "live", "v2")
		mustMembers(t, s, "set", "m")
		// Match(key, nil) passes only when absent; an empty value is
		// present and matches an empty, non-nil value.
		must(t, s.Apply(ctx, store.Match("new", nil), store.Match("set", nil), store.Put("new", []byte("n"), 0)))
		if err := s.Apply(ctx, store.Match("new", nil), store.Put("new", []byte("again"), 0)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Match nil of a present key: %v, want ErrConflict", err)
		}
		mustGet(t, s, "new", "n")
		must(t, s.Apply(ctx, store.Match("empty", []byte{}), store.Match("live", []byte("v2"))))
		// Both failures in one batch: either sentinel will do.
		err := s.Apply(ctx, store.Absent("live"), store.Match("live", []byte("old")))
		if !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict) {
			t.Fatalf("two failing conditions: %v", err)
		}
	})
	t.Run("ApplyWrites", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "a", []byte("1"), 0))
		must(t, s.Set(ctx, "b", []byte("2"), 0))
		must(t, s.SetAdd(ctx, "s", "x", "y"))
		must(t, s.Apply(ctx,
			store.Delete("a"), store.Delete("never"),
			store.SetRemove("s", "x"), store.SetRemove("s", "missing"), store.SetRemove("none", "m"),
			store.Put("b", []byte("3"), 0), store.Put("b", []byte("4"), 0),
			store.SetAdd("s", "z"), store.SetAdd("s", "z")))
		mustMissing(t, s, "a")
		mustGet(t, s, "b", "4")
		mustMembers(t, s, "s", "y", "z")
		mustMembers(t, s, "none")
		// Writes are made in order: the last one of a key wins.
		must(t, s.Apply(ctx,
			store.Put("c", []byte("1"), 0), store.Delete("c"),
			store.SetAdd("t", "m"), store.SetRemove("t", "m"),
			store.Delete("d"), store.Put("d", []byte("2"), 0)))
		mustMissing(t, s, "c")
		mustMembers(t, s, "t")
		mustGet(t, s, "d", "2")
		// Conditions see the state before the batch, not its own writes.
		must(t, s.Apply(ctx,
			store.Put("e", []byte("1"), 0), store.Absent("e"), store.Match("e", nil),
			store.Create("e", []byte("2"), 0)))
		mustGet(t, s, "e", "2")
		if err := s.Apply(ctx, store.Delete("b"), store.Create("b", []byte("5"), 0)); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Create after a Delete of a live key in the same batch: %v, want ErrExists", err)
		}
		mustGet(t, s, "b", "4")
		// Values are binary-safe; an empty or nil value is stored empty.
		bin := []byte{0, 1, 2, 255, 0}
		must(t, s.Apply(ctx, store.Put("bin", bin, 0), store.Put("empty", []byte{}, 0), store.Put("nil", nil, 0)))
		must(t, s.Apply(ctx, store.Match("bin", bin), store.Match("empty", []byte{}), store.Match("nil", []byte{})))
		for _, k := range []string{"empty", "nil"} {
			if v, err := s.Get(ctx, k); err != nil || len(v) != 0 {
				t.Fatalf("Get(%q) after an empty Put: %q %v", k, v, err)
			}
		}
		// Sets and keys live apart here too.
		must(t, s.Apply(ctx, store.SetAdd("k", "m"), store.Put("k2", []byte("v"), 0)))
		mustMissing(t, s, "k")
		mustMembers(t, s, "k2")
	})
	t.Run("ApplyTTL", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "old", []byte("x"), shortTTL))
		must(t, s.Set(ctx, "renewed", []byte("r1"), shortTTL))
		must(t, s.Apply(ctx,
			store.Put("short", []byte("s"), shortTTL),
			store.Create("created", []byte("c"), shortTTL),
			store.Put("forever", []byte("f"), 0),
			store.Put("negative", []byte("n"), -time.Second), // <= 0: no expiry
			store.Put("renewed", []byte("r2"), 0)))           // replaces the TTL too
		// A live key with a TTL is present to every condition.
		if err := s.Apply(ctx, store.Put("z", nil, 0), store.Absent("old")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Absent of a live key with a TTL: %v, want ErrExists", err)
		}
		if err := s.Apply(ctx, store.Put("z", nil, 0), store.Create("short", nil, 0)); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Create over a live key with a TTL: %v, want ErrExists", err)
		}
		mustMissing(t, s, "z")
		mustGet(t, s, "short", "s")
		waitGone(t, s, "old")
		waitGone(t, s, "short")
		waitGone(t, s, "created")
		mustGet(t, s, "forever", "f")
		mustGet(t, s, "negative", "n")
		mustGet(t, s, "renewed", "r2")
		// An expired key is absent to every condition.
		must(t, s.Apply(ctx,
			store.Absent("old"), store.Match("short", nil),
			store.Create("created", []byte("again"), 0)))
		if err := s.Apply(ctx, store.Match("old", []byte("x"))); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Match of an expired value: %v, want ErrConflict", err)
		}
		mustGet(t, s, "created", "again")
	})
	t.Run("ApplyInvalid", func(t *testing.T) {
		s := newStore(t)
		bad := map[string]store.Op{
			"Put":       store.Put("", []byte("v"), 0),
			"Create":    store.Create("", []byte("v"), 0),
			"Delete":    store.Delete(""),
			"Absent":    store.Absent(""),
			"Match":     store.Match("", nil),
			"SetAdd":    store.SetAdd("", "m"),
			"SetRemove": store.SetRemove("", "m"),
			"zero Op":   {},
		}
		for name, op := range bad {
			err := s.Apply(ctx, store.Put("k", []byte("v"), 0), op)
			if err == nil || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
				t.Errorf("batch with an invalid %s: %v, want an error", name, err)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Apply(cctx, store.Put("k", []byte("v"), 0)); !errors.Is(err, context.Canceled) {
			t.Errorf("Apply with a cancelled context: %v, want context.Canceled", err)
		}
		mustMissing(t, s, "k")
	})
	t.Run("ApplyConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		var wins atomic.Int32
		parallel(n, func(i int) {
			id := strconv.Itoa(i)
			err := s.Apply(ctx,
				store.Put("rec-"+id, []byte(id), 0),
				store.SetAdd("all", id),
				store.Create("name", []byte(id), 0))
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrExists) {
				t.Error(err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d batches succeeded, want 1", wins.Load())
		}
		got, err := s.SetMembers(ctx, "all")
		must(t, err)
		if len(got) != 1 {
			t.Fatalf("set after the race: %v, want the winner alone", got)
		}
		mustGet(t, s, "name", got[0])
		for i := range n {
			id := strconv.Itoa(i)
			if id == got[0] {
				mustGet(t, s, "rec-"+id, id)
			} else {
				mustMissing(t, s, "rec-"+id)
			}
		}
	})
	t.Run("ApplyCompareAndSwap", func(t *testing.T) {
		s := newStore(t)
		const workers, rounds = 16, 10
		parallel(workers, func(int) {
			for range rounds {
				if err := increment(ctx, s, "counter"); err != nil {
					t.Error(err)
					return
				}
			}
		})
		mustGet(t, s, "counter", strconv.Itoa(workers*rounds))
	})
}

// increment adds one to the decimal counter under key by compare-and-swap,
// retrying when another writer got in between. The retries are bounded so
// that a backend whose Match never holds fails rather than spins.
func increment(ctx context.Context, s store.Store, key string) error {
	for range 10_000 {
		old, err := s.Get(ctx, key)
		n := 0
		switch {
		case errors.Is(err, store.ErrNotFound):
			old = nil // Match(key, nil): still absent
		case err != nil:
			return err
		default:
			if n, err = strconv.Atoi(string(old)); err != nil {
				return err
			}
		}
		err = s.Apply(ctx, store.Match(key, old), store.Put(key, []byte(strconv.Itoa(n+1)), 0))
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("increment %q: still conflicting after 10000 attempts", key)
}

func mustMissing(t *testing.T, s store.Store, key string) {
	t.Helper()
	if v, err := s.Get(context.Background(), key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, v, err)
	}
}
