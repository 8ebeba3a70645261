package metrics

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Store returns st timing every call and counting its failures into s;
// nil metrics leave st as it is.
func (s *Set) Store(st store.Store) store.Store {
	if s == nil {
		return st
	}
	t := NewTimer(st)
	t.Use(s)
	return t
}

// Timer is a store whose calls are measured into the metrics in use.
// It outlives configurations: the one store of a process keeps one
// Timer (a store's identity matters to what caches by it, such as the
// gates' session cache), and each configuration points it at its own
// metrics with Use.
type Timer struct {
	store.Store
	m atomic.Pointer[Set]
}

// NewTimer wraps st; until Use, calls are not measured.
func NewTimer(st store.Store) *Timer { return &Timer{Store: st} }

// Use measures the calls from now on into s (nil: not at all).
func (t *Timer) Use(s *Set) { t.m.Store(s) }

// done records one call of op that started at start.
func (t *Timer) done(op string, start time.Time, err error) {
	m := t.m.Load()
	if m == nil {
		return
	}
	m.storeDur.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrConflict) {
		m.storeErr.WithLabelValues(op).Inc()
	}
}

func (t *Timer) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	v, err := t.Store.Get(ctx, key)
	t.done("get", start, err)
	return v, err
}

func (t *Timer) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	start := time.Now()
	err := t.Store.Set(ctx, key, value, ttl)
	t.done("set", start, err)
	return err
}

func (t *Timer) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	start := time.Now()
	err := t.Store.Create(ctx, key, value, ttl)
	t.done("create", start, err)
	return err
}

func (t *Timer) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := t.Store.Delete(ctx, key)
	t.done("delete", start, err)
	return err
}

func (t *Timer) Take(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	v, err := t.Store.Take(ctx, key)
	t.done("take", start, err)
	return v, err
}

func (t *Timer) Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	// The caller's own refusal (fn's error) is not the store failing.
	var refused error
	start := time.Now()
	err := t.Store.Update(ctx, key, ttl, func(old []byte) ([]byte, error) {
		v, err := fn(old)
		refused = err
		return v, err
	})
	if refused != nil && errors.Is(err, refused) {
		t.done("update", start, nil)
	} else {
		t.done("update", start, err)
	}
	return err
}

func (t *Timer) SetAdd(ctx context.Context, set string, members ...string) error {
	start := time.Now()
	err := t.Store.SetAdd(ctx, set, members...)
	t.done("set_add", start, err)
	return err
}

func (t *Timer) SetRemove(ctx context.Context, set string, members ...string) error {
	start := time.Now()
	err := t.Store.SetRemove(ctx, set, members...)
	t.done("set_remove", start, err)
	return err
}

func (t *Timer) SetMembers(ctx context.Context, set string) ([]string, error) {
	start := time.Now()
	v, err := t.Store.SetMembers(ctx, set)
	t.done("set_members", start, err)
	return v, err
}

func (t *Timer) Apply(ctx context.Context, ops ...store.Op) error {
	start := time.Now()
	err := t.Store.Apply(ctx, ops...)
	t.done("apply", start, err)
	return err
}

func (t *Timer) Publish(ctx context.Context, channel string, msg []byte) error {
	start := time.Now()
	err := t.Store.Publish(ctx, channel, msg)
	t.done("publish", start, err)
	return err
}

// Scan is measured without the time fn takes (the caller's work, an
// HTTP client reading an export, is not the store's latency), and fn's
// own error is not counted as the store's.
func (t *Timer) Scan(ctx context.Context, prefix string, fn func(store.Record) error) error {
	var inFn time.Duration
	var refused error
	start := time.Now()
	err := t.Store.Scan(ctx, prefix, func(r store.Record) error {
		s := time.Now()
		refused = fn(r)
		inFn += time.Since(s)
		return refused
	})
	if refused != nil {
		t.done("scan", start.Add(inFn), nil)
	} else {
		t.done("scan", start.Add(inFn), err)
	}
	return err
}

func (t *Timer) Ping(ctx context.Context) error {
	start := time.Now()
	err := t.Store.Ping(ctx)
	t.done("ping", start, err)
	return err
}
