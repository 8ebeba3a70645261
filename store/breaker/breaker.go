// Package breaker wraps a store.Store in a circuit breaker, so that a
// backend that hangs or is down is answered at once instead of making
// every request wait out its timeout: after Threshold failures in a row
// the breaker opens and every call fails with ErrOpen for Cooldown; then
// one call at a time goes through as a probe, and the first success
// closes it again.
//
// Failures are errors that say the backend did not answer (Options.
// Failure; by default network errors, timeouts and cut connections) —
// not answers (ErrNotFound, ErrExists, ErrConflict), not a caller's bad
// request or own cancelled context.
package breaker

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// ErrOpen: the breaker is open; the call was not made.
var ErrOpen = errors.New("store unavailable (circuit open after repeated failures)")

// Options tune the breaker.
type Options struct {
	// Threshold failures in a row open the breaker (default 5).
	Threshold int
	// Cooldown is how long it stays open before a probe (default 1s).
	Cooldown time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnChange, when set, is told when the breaker opens or closes.
	OnChange func(open bool)
	// Failure reports whether err means the backend did not answer.
	// Default: IsUnavailable.
	Failure func(err error) bool
	// CallTimeout, when set, bounds each call (connecting included, for
	// backends that honour their context): a call that has not been
	// answered by then fails, and counts.
	CallTimeout time.Duration
}

// IsUnavailable reports whether err is a network error, a timeout or a
// connection cut short.
func IsUnavailable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed)
}

// Store is a store.Store behind a breaker.
type Store struct {
	store.Store
	opt Options

	mu       sync.Mutex
	failures int
	openedAt time.Time
	open     bool
	probing  bool
}

// Wrap returns st behind a breaker.
func Wrap(st store.Store, opt Options) *Store {
	if opt.Threshold <= 0 {
		opt.Threshold = 5
	}
	if opt.Cooldown <= 0 {
		opt.Cooldown = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Failure == nil {
		opt.Failure = IsUnavailable
	}
	return &Store{Store: st, opt: opt}
}

// Open reports whether the breaker is open now.
func (s *Store) Open() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// allow says whether a call may go through, and whether it is the probe.
func (s *Store) allow() (ok, probe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return true, false
	}
	if s.probing || s.opt.Now().Sub(s.openedAt) < s.opt.Cooldown {
		return false, false
	}
	s.probing = true
	return true, true
}

// done records the outcome of a call that went through.
func (s *Store) done(ctx context.Context, err error, probe bool) {
	failed := err != nil && ctx.Err() == nil && s.opt.Failure(err)
	s.mu.Lock()
	if probe {
		s.probing = false
	}
	var changed, nowOpen bool
	switch {
	case !failed:
		s.failures = 0
		if s.open {
			s.open, changed = false, true
		}
	default:
		s.failures++
		if probe || !s.open && s.failures >= s.opt.Threshold {
			if !s.open {
				changed = true
			}
			s.open, s.openedAt = true, s.opt.Now()
		}
	}
	nowOpen = s.open
	s.mu.Unlock()
	if changed && s.opt.OnChange != nil {
		s.opt.OnChange(nowOpen)
	}
}

func call[T any](s *Store, ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	ok, probe := s.allow()
	if !ok {
		var zero T
		return zero, ErrOpen
	}
	cctx := ctx
	if s.opt.CallTimeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, s.opt.CallTimeout)
		defer cancel()
	}
	v, err := f(cctx)
	s.done(ctx, err, probe)
	return v, err
}

func callErr(s *Store, ctx context.Context, f func(ctx context.Context) error) error {
	_, err := call(s, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return call(s, ctx, func(ctx context.Context) ([]byte, error) { return s.Store.Get(ctx, key) })
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.Set(ctx, key, value, ttl) })
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.Create(ctx, key, value, ttl) })
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.Delete(ctx, key) })
}

// Take implements store.Store.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	return call(s, ctx, func(ctx context.Context) ([]byte, error) { return s.Store.Take(ctx, key) })
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.Update(ctx, key, ttl, fn) })
}

// SetAdd implements store.Store.
func (s *Store) SetAdd(ctx context.Context, set string, members ...string) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.SetAdd(ctx, set, members...) })
}

// SetRemove implements store.Store.
func (s *Store) SetRemove(ctx context.Context, set string, members ...string) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.SetRemove(ctx, set, members...) })
}

// SetMembers implements store.Store.
func (s *Store) SetMembers(ctx context.Context, set string) ([]string, error) {
	return call(s, ctx, func(ctx context.Context) ([]string, error) { return s.Store.SetMembers(ctx, set) })
}

// Apply implements store.Store.
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.Apply(ctx, ops...) })
}

// Publish implements store.Store.
func (s *Store) Publish(ctx context.Context, channel string, msg []byte) error {
	return callErr(s, ctx, func(ctx context.Context) error { return s.Store.Publish(ctx, channel, msg) })
}

// Scan implements store.Store. The scan is one call for the breaker, but
// CallTimeout does not bound it (a whole scan takes longer than one
// call should); the backend's own timeouts bound each of its round trips.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(store.Record) error) error {
	ok, probe := s.allow()
	if !ok {
		return ErrOpen
	}
	// fn's own error is not the backend failing.
	var refused error
	err := s.Store.Scan(ctx, prefix, func(r store.Record) error {
		refused = fn(r)
		return refused
	})
	if refused != nil {
		s.done(ctx, nil, probe)
	} else {
		s.done(ctx, err, probe)
	}
	return err
}

// Ping implements store.Store. It always reaches the backend (it is how
// health checks see that it is back), and counts as a probe.
func (s *Store) Ping(ctx context.Context) error {
	err := s.Store.Ping(ctx)
	s.done(ctx, err, false)
	return err
}
