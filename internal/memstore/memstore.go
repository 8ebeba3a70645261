// Package memstore is an in-memory store.Store for the tests of this
// repository (users, session, chain, …). It is not a production backend:
// nothing is persisted, publish/subscribe stays inside the process, and it
// keeps everything in one map behind one mutex.
//
// It implements the whole store.Store contract (see store/store.go):
// TTLs against an injectable clock (Store.Now), an atomic Take, Update
// with fn run under the write lock (exactly once), sorted set members,
// Apply batches checked and written under the one lock, and in-process
// publish/subscribe that never blocks the publisher.
// Expired records are invisible at once and dropped lazily when touched.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// subBuffer is how many undelivered messages a subscriber may hold before
// further ones are dropped for it.
const subBuffer = 64

// Store is an in-memory store.Store. Use New; the zero value is not ready.
type Store struct {
	// Now is the clock TTLs are measured against; nil means time.Now.
	// Assign it before the store is shared between goroutines; a fake
	// clock that moves while the store is in use must itself be safe for
	// concurrent use (the store calls it under its own lock).
	Now func() time.Time

	mu     sync.Mutex
	kv     map[string]entry
	sets   map[string]map[string]struct{}
	subs   map[string]map[*subscriber]struct{}
	closed bool
	done   chan struct{}
	// dropped counts messages a full subscriber missed.
	dropped uint64
}

type entry struct {
	value   []byte
	expires time.Time // zero: never
}

type subscriber struct {
	ch     chan []byte
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty store on the real clock.
func New() *Store {
	return &Store{
		Now:  time.Now,
		kv:   map[string]entry{},
		sets: map[string]map[string]struct{}{},
		subs: map[string]map[*subscriber]struct{}{},
		done: make(chan struct{}),
	}
}

// now must be called with mu held.
func (s *Store) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// check validates a call; it must be called with mu held.
func (s *Store) check(ctx context.Context, key string) error {
	if s.closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return errors.New("memstore: empty key")
	}
	return nil
}

// expiry is the expiry time of a record written now with ttl; a ttl of
// zero or less means none (store.Store's contract).
func (s *Store) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

// live returns the unexpired value of key (not a copy), dropping an
// expired record. Called with mu held.
func (s *Store) live(key string) ([]byte, bool) {
	e, ok := s.kv[key]
	if !ok {
		return nil, false
	}
	if !e.expires.IsZero() && !s.now().Before(e.expires) {
		delete(s.kv, key)
		return nil, false
	}
	return e.value, true
}

// put stores a copy of value under key; called with mu held. It cannot
// fail, so Apply never stops half-way through its writes.
func (s *Store) put(key string, value []byte, ttl time.Duration) {
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	s.kv[key] = entry{value: v, expires: s.expiry(ttl)}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, key); err != nil {
		return nil, err
	}
	v, ok := s.live(key)
	if !ok {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, key); err != nil {
		return err
	}
	s.put(key, value, ttl)
	return nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, key); err != nil {
		return err
	}
	if _, ok := s.live(key); ok {
		return store.ErrExists
	}
	s.put(key, value, ttl)
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, key); err != nil {
		return err
	}
	delete(s.kv, key)
	return nil
}

// Take implements store.Store: read and delete under one lock.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, key); err != nil {
		return nil, err
	}
	v, ok := s.live(key)
	if !ok {
		return nil, store.ErrNotFound
	}
	delete(s.kv, key)
	return v, nil // the record is gone: no one else holds v
}

// Update implements store.Store. fn runs once, under the store's lock, so
// it must not call the store (it would deadlock, as the contract warns).
func (s *Store) Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, key); err != nil {
		return err
	}
	var old []byte
	if v, ok := s.live(key); ok {
		old = bytes.Clone(v)
		if old == nil {
			old = []byte{} // present but empty is not absent
		}
	}
	nv, err := fn(old)
	if err != nil {
		return err
	}
	if nv == nil {
		delete(s.kv, key)
		return nil
	}
	s.put(key, nv, ttl)
	return nil
}

// SetAdd implements store.Store.
func (s *Store) SetAdd(ctx context.Context, set string, members ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, set); err != nil {
		return err
	}
	m := s.sets[set]
	if m == nil {
		m = map[string]struct{}{}
		s.sets[set] = m
	}
	for _, x := range members {
		m[x] = struct{}{}
	}
	return nil
}

// SetRemove implements store.Store.
func (s *Store) SetRemove(ctx context.Context, set string, members ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, set); err != nil {
		return err
	}
	m := s.sets[set]
	for _, x := range members {
		delete(m, x)
	}
	if len(m) == 0 {
		delete(s.sets, set)
	}
	return nil
}

// Apply implements store.Store: conditions and writes under one lock.
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, op := range ops {
		if op.Kind() < store.OpPut || op.Kind() > store.OpSetRemove {
			return fmt.Errorf("memstore: unknown op kind %d", op.Kind())
		}
		if op.Key() == "" {
			return errors.New("memstore: empty key")
		}
	}
	for _, op := range ops {
		switch op.Kind() {
		case store.OpCreate, store.OpAbsent:
			if _, ok := s.live(op.Key()); ok {
				return store.ErrExists
			}
		case store.OpMatch:
			v, ok := s.live(op.Key())
			if ok != (op.Value() != nil) || !bytes.Equal(v, op.Value()) {
				return store.ErrConflict
			}
		}
	}
	for _, op := range ops {
		switch op.Kind() {
		case store.OpPut, store.OpCreate:
			s.put(op.Key(), op.Value(), op.TTL())
		case store.OpDelete:
			delete(s.kv, op.Key())
		case store.OpSetAdd:
			m := s.sets[op.Key()]
			if m == nil {
				m = map[string]struct{}{}
				s.sets[op.Key()] = m
			}
			m[op.Member()] = struct{}{}
		case store.OpSetRemove:
			delete(s.sets[op.Key()], op.Member())
			if len(s.sets[op.Key()]) == 0 {
				delete(s.sets, op.Key())
			}
		}
	}
	return nil
}

// SetMembers implements store.Store: sorted, and an empty (non-nil) slice
// for a missing set.
func (s *Store) SetMembers(ctx context.Context, set string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, set); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(s.sets[set]))
	for x := range s.sets[set] {
		out = append(out, x)
	}
	slices.Sort(out)
	return out, nil
}

// Scan implements store.Store: keys then sets, each in lexical order,
// copied out under the lock and handed to fn after it is released.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(store.Record) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	var recs []store.Record
	now := s.now()
	for k := range s.kv {
		if v, ok := s.live(k); ok && strings.HasPrefix(k, prefix) {
			var ttl time.Duration
			if e := s.kv[k].expires; !e.IsZero() {
				ttl = e.Sub(now)
			}
			recs = append(recs, store.Record{Key: k, Value: bytes.Clone(v), TTL: ttl})
		}
	}
	slices.SortFunc(recs, func(a, b store.Record) int { return strings.Compare(a.Key, b.Key) })
	n := len(recs)
	for name, m := range s.sets {
		if len(m) > 0 && strings.HasPrefix(name, prefix) {
			members := slices.Sorted(maps.Keys(m))
			recs = append(recs, store.Record{Key: name, Members: members})
		}
	}
	slices.SortFunc(recs[n:], func(a, b store.Record) int { return strings.Compare(a.Key, b.Key) })
	s.mu.Unlock()
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Publish implements store.Store. It never blocks: a subscriber whose
// buffer is full misses the message (see Dropped).
func (s *Store) Publish(ctx context.Context, channel string, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, channel); err != nil {
		return err
	}
	for sub := range s.subs[channel] {
		select {
		case sub.ch <- bytes.Clone(msg):
		default:
			s.dropped++
		}
	}
	return nil
}

// Subscribe implements store.Store. The channel is closed when ctx is
// done or the store is closed.
func (s *Store) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx, channel); err != nil {
		return nil, err
	}
	sub := &subscriber{ch: make(chan []byte, subBuffer)}
	if s.subs[channel] == nil {
		s.subs[channel] = map[*subscriber]struct{}{}
	}
	s.subs[channel][sub] = struct{}{}
	done := s.done
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.unsubscribe(channel, sub)
	}()
	return sub.ch, nil
}

// unsubscribe removes and closes sub; called with mu held, so Publish
// never sends on a closed channel.
func (s *Store) unsubscribe(channel string, sub *subscriber) {
	delete(s.subs[channel], sub)
	if len(s.subs[channel]) == 0 {
		delete(s.subs, channel)
	}
	if !sub.closed {
		sub.closed = true
		close(sub.ch)
	}
}

// Dropped is how many published messages slow subscribers missed.
func (s *Store) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Len is the number of live keys (not sets), for tests that check that
// nothing is left behind.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.kv {
		if _, ok := s.live(k); ok {
			n++
		}
	}
	return n
}

// Keys lists the live keys with the given prefix, sorted (a test helper).
func (s *Store) Keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.kv {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			if _, ok := s.live(k); ok {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

// Close implements store.Store: every later call fails with ErrClosed and
// every subscription's channel is closed. Closing twice is fine.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	for channel, subs := range s.subs {
		for sub := range subs {
			s.unsubscribe(channel, sub)
		}
	}
	return nil
}
