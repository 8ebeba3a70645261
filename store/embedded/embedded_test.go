package embedded

import (
	"context"
	"errors"
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

func TestCorruptRecordIsAnError(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "g.db"), Options{})
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketKV).Put([]byte("bad"), []byte{1, 2}) })
	if _, err := s.Get(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Get corrupt: %v", err)
	}
	if err := s.Update(ctx, "bad", 0, func([]byte) ([]byte, error) { return []byte("x"), nil }); err == nil {
		t.Fatal("Update over a corrupt record succeeded silently")
	}
	if _, err := s.Get(ctx, ""); err == nil {
		t.Fatal("empty key accepted")
	}
}
