package memstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/storetest"
)

// The shared conformance suite (real time, short TTLs).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestInjectedClock(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := New()
	s.Now = c.now
	must(t, s.Set(ctx, "a", []byte("1"), time.Minute))
	must(t, s.Set(ctx, "b", []byte("1"), time.Minute)) // not read before it expires
	must(t, s.Set(ctx, "forever", []byte("f"), 0))
	must(t, s.Update(ctx, "u", time.Hour, func(old []byte) ([]byte, error) { return []byte("x"), nil }))
	c.add(time.Minute - time.Nanosecond)
	if v, err := s.Get(ctx, "a"); err != nil || string(v) != "1" {
		t.Fatalf("just before expiry: %q %v", v, err)
	}
	c.add(time.Nanosecond)
	for _, k := range []string{"a"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s at expiry: %v", k, err)
		}
		if _, err := s.Take(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Take %s at expiry: %v", k, err)
		}
	}
	// An expired key is free for Create, absent to Apply's conditions,
	// and absent (nil) for Update.
	must(t, s.Apply(ctx, store.Absent("b"), store.Match("b", nil)))
	must(t, s.Create(ctx, "a", []byte("2"), 0))
	c.add(2 * time.Hour)
	must(t, s.Update(ctx, "u", 0, func(old []byte) ([]byte, error) {
		if old != nil {
			t.Errorf("expired value visible to Update: %q", old)
		}
		return []byte("y"), nil
	}))
	c.add(1000 * time.Hour)
	if got := s.Keys(""); len(got) != 3 || got[0] != "a" || got[1] != "forever" || got[2] != "u" {
		t.Fatalf("Keys = %v", got)
	}
}

func TestEdgeCases(t *testing.T) {
	ctx := context.Background()
	s := New()
	// A present empty value is not absent.
	must(t, s.Set(ctx, "empty", nil, 0))
	must(t, s.Update(ctx, "empty", 0, func(old []byte) ([]byte, error) {
		if old == nil {
			t.Error("present empty value seen as absent")
		}
		return old, nil
	}))
	// A negative ttl means no expiry, as on every backend.
	must(t, s.Set(ctx, "neg", []byte("x"), -time.Second))
	if v, err := s.Get(ctx, "neg"); err != nil || string(v) != "x" {
		t.Errorf("negative ttl: %q %v", v, err)
	}
	if err := s.Set(ctx, "", []byte("x"), 0); err == nil {
		t.Error("empty key accepted")
	}
	// Update's fn gets a copy: changing it in place does not write.
	must(t, s.Set(ctx, "k", []byte("abc"), 0))
	boom := errors.New("boom")
	_ = s.Update(ctx, "k", 0, func(old []byte) ([]byte, error) { old[0] = 'X'; return nil, boom })
	if v, _ := s.Get(ctx, "k"); string(v) != "abc" {
		t.Fatalf("failed Update changed the value: %q", v)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	// A subscriber that does not read loses messages, the publisher never blocks.
	_, err := s.Subscribe(ctx, "slow")
	must(t, err)
	for range subBuffer + 5 {
		must(t, s.Publish(ctx, "slow", []byte("m")))
	}
	if s.Dropped() != 5 {
		t.Fatalf("dropped %d, want 5", s.Dropped())
	}
	must(t, s.Close())
	if _, err := s.Subscribe(ctx, "ch"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if _, err := s.SetMembers(ctx, "x"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("SetMembers after Close: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
