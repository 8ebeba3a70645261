package breaker

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/storetest"
)

// The breaker is transparent while the backend answers.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := Wrap(memstore.New(), Options{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// down is a store whose backend can be made to fail (like a hung Redis
// answering with timeouts) and counts the calls that reach it.
type down struct {
	store.Store
	fail  atomic.Bool
	calls atomic.Int32
}

// errTimeout is what a driver says when the server does not answer.
var errTimeout = &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (d *down) Get(ctx context.Context, key string) ([]byte, error) {
	d.calls.Add(1)
	if d.fail.Load() {
		return nil, errTimeout
	}
	return d.Store.Get(ctx, key)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestOpensFailsFastProbesAndCloses(t *testing.T) {
	ctx := context.Background()
	d := &down{Store: memstore.New()}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	var changes []bool
	s := Wrap(d, Options{Threshold: 3, Cooldown: time.Second, Now: c.now, OnChange: func(open bool) { changes = append(changes, open) }})
	// Answers, "not found" included, are no failures.
	for range 10 {
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	d.fail.Store(true)
	for i := range 3 {
		if _, err := s.Get(ctx, "k"); !errors.Is(err, errTimeout) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if !s.Open() {
		t.Fatal("not open after 3 failures in a row")
	}
	before := d.calls.Load()
	for range 100 {
		if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrOpen) {
			t.Fatalf("while open: %v", err)
		}
	}
	if d.calls.Load() != before {
		t.Fatalf("%d calls reached the backend while open", d.calls.Load()-before)
	}
	// After the cooldown one probe goes through; it fails: open again.
	c.advance(time.Second)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, errTimeout) {
		t.Fatalf("probe: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrOpen) {
		t.Fatalf("after a failed probe: %v", err)
	}
	// The backend is back: the next probe closes the breaker.
	d.fail.Store(false)
	c.advance(time.Second)
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("probe when back: %v", err)
	}
	if s.Open() {
		t.Fatal("still open after a good probe")
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("OnChange saw %v, want open then closed", changes)
	}
	// A caller giving up (its context) is not the backend failing.
	d.fail.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for range 5 {
		s.Get(cctx, "k")
	}
	if s.Open() {
		t.Fatal("cancelled calls opened the breaker")
	}
}

// While open, only one probe at a time reaches the backend.
func TestOneProbeAtATime(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	d := &slow{down: down{Store: memstore.New()}, release: release}
	d.fail.Store(true)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := Wrap(d, Options{Threshold: 1, Cooldown: time.Second, Now: c.now})
	s.Get(ctx, "k") // opens
	c.advance(time.Second)
	d.block.Store(true)
	var wg sync.WaitGroup
	var open atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Get(ctx, "k"); errors.Is(err, ErrOpen) {
				open.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if open.Load() != 19 {
		t.Fatalf("%d of 20 concurrent calls refused while one probed, want 19", open.Load())
	}
}

type slow struct {
	down
	block   atomic.Bool
	release chan struct{}
}

func (s *slow) Get(ctx context.Context, key string) ([]byte, error) {
	if s.block.Load() {
		<-s.release
	}
	return s.down.Get(ctx, key)
}
