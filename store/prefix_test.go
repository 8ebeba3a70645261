package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/storetest"
)

// A prefixed view is a whole store: it passes the conformance suite.
func TestPrefixedConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		base := memstore.New()
		t.Cleanup(func() { base.Close() })
		v := store.WithPrefix(base, "mod:x:")
		t.Cleanup(func() { v.Close() })
		return v
	})
}

// Two views of one backend see nothing of each other, nor of the
// backend's unprefixed keys: keys, sets (names, not members), Apply
// batches (conditions included) and channels.
func TestPrefixedIsolation(t *testing.T) {
	ctx := context.Background()
	base := memstore.New()
	t.Cleanup(func() { base.Close() })
	a, b := store.WithPrefix(base, "mod:a:"), store.WithPrefix(base, "mod:b:")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(base.Set(ctx, "k", []byte("root"), 0))
	must(a.Set(ctx, "k", []byte("a"), 0))
	if v, err := b.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b sees %q, %v", v, err)
	}
	if v, _ := base.Get(ctx, "k"); string(v) != "root" {
		t.Fatalf("a overwrote the backend's key: %q", v)
	}
	if v, _ := base.Get(ctx, "mod:a:k"); string(v) != "a" {
		t.Fatalf("a's key is not under its prefix: %q", v)
	}
	// Apply: a condition on b's key name checks b's record, not a's.
	must(b.Apply(ctx, store.Absent("k"), store.Put("k", []byte("b"), 0), store.SetAdd("s", "m1")))
	if err := a.Apply(ctx, store.Absent("k"), store.Put("other", []byte("x"), 0)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a's Absent(k) with a's k present: %v", err)
	}
	if err := a.Apply(ctx, store.Match("k", []byte("b")), store.Delete("k")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a matched b's value: %v", err)
	}
	if v, _ := b.Get(ctx, "k"); string(v) != "b" {
		t.Fatalf("b's k = %q", v)
	}
	must(a.SetAdd(ctx, "s", "m2"))
	am, _ := a.SetMembers(ctx, "s")
	bm, _ := b.SetMembers(ctx, "s")
	if !slices.Equal(am, []string{"m2"}) || !slices.Equal(bm, []string{"m1"}) {
		t.Fatalf("sets mixed: a %v, b %v", am, bm)
	}
	if _, err := b.Take(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b took a key it never wrote: %v", err)
	}

	// Channels: a message published in a reaches a's subscriber only.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ca, err := a.Subscribe(sctx, "ch")
	must(err)
	cb, err := b.Subscribe(sctx, "ch")
	must(err)
	croot, err := base.Subscribe(sctx, "ch")
	must(err)
	must(a.Publish(ctx, "ch", []byte("hello")))
	select {
	case m := <-ca:
		if string(m) != "hello" {
			t.Fatalf("a got %q", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a's subscriber got nothing")
	}
	select {
	case m := <-cb:
		t.Fatalf("b got a's message %q", m)
	case m := <-croot:
		t.Fatalf("the unprefixed channel got a's message %q", m)
	case <-time.After(100 * time.Millisecond):
	}

	// Closing a view ends its subscriptions, not the backend.
	must(a.Close())
	select {
	case _, ok := <-ca:
		if ok {
			t.Fatal("message after close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("subscription of a closed view still open")
	}
	if _, err := a.Get(ctx, "k"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("closed view: %v", err)
	}
	if v, err := b.Get(ctx, "k"); err != nil || string(v) != "b" {
		t.Fatalf("closing a closed the backend: %q %v", v, err)
	}
}

// Adopt moves (or copies) a record from before the prefix, once.
func TestPrefixedAdopt(t *testing.T) {
	ctx := context.Background()
	base := memstore.New()
	t.Cleanup(func() { base.Close() })
	v := store.WithPrefix(base, "mod:totp:")
	if ok, err := v.Adopt(ctx, "rec:1", "totp:1", 0, true); ok || err != nil {
		t.Fatalf("adopted a missing record: %v %v", ok, err)
	}
	base.Set(ctx, "totp:1", []byte("old"), 0)
	ok, err := v.Adopt(ctx, "rec:1", "totp:1", 0, true)
	if !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	if got, _ := v.Get(ctx, "rec:1"); string(got) != "old" {
		t.Fatalf("adopted %q", got)
	}
	if _, err := base.Get(ctx, "totp:1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("moved record still at its old key: %v", err)
	}
	// A record already in the view is never overwritten by a legacy one.
	base.Set(ctx, "totp:1", []byte("stale"), 0)
	if ok, _ := v.Adopt(ctx, "rec:1", "totp:1", 0, true); ok {
		t.Fatal("adopted over a present record")
	}
	if got, _ := v.Get(ctx, "rec:1"); string(got) != "old" {
		t.Fatalf("record now %q", got)
	}
	// Copy keeps the legacy record.
	base.Set(ctx, "keys:totp", []byte("K"), 0)
	if ok, _ := v.Adopt(ctx, "key", "keys:totp", 0, false); !ok {
		t.Fatal("copy not adopted")
	}
	if got, _ := base.Get(ctx, "keys:totp"); string(got) != "K" {
		t.Fatal("copy removed the legacy record")
	}
	// Two views racing for one legacy record: exactly one gets it.
	base.Set(ctx, "totp:2", []byte("r2"), 0)
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := store.WithPrefix(base, "mod:"+string(rune('a'+i))+":")
			if ok, err := w.Adopt(ctx, "rec:2", "totp:2", 0, true); ok && err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d views adopted one moved record", wins)
	}
}
