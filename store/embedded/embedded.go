// Package embedded is the zero set-up store: one bbolt file, normally in
// Caddy's data directory. It serves a single process (bbolt locks the
// file); publish/subscribe stays inside that process.
//
// Every value is stored behind an 8-byte big-endian expiry (Unix
// nanoseconds, 0 for none). Expired records are invisible at once and
// deleted by a sweeper in the background.
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/gatehouse-idp/gatehouse/store"
)

var (
	bucketKV   = []byte("kv")
	bucketSets = []byte("sets")
)

// Options tune a Store; the zero value is fine.
type Options struct {
	// SweepInterval is how often expired records are deleted. Default 1m.
	SweepInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives sweeper errors; default slog.Default().
	Logger *slog.Logger
}

// Store is the bbolt-backed store.Store.
type Store struct {
	db     *bolt.DB
	path   string
	opt    Options
	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
	// Dropped counts pub/sub messages dropped for slow subscribers.
	dropped atomic.Uint64
}

type subscriber struct {
	ch   chan []byte
	once sync.Once
}

func (s *subscriber) close() { s.once.Do(func() { close(s.ch) }) }

// Open opens or creates the store file at path.
func Open(path string, opt Options) (*Store, error) {
	if opt.SweepInterval <= 0 {
		opt.SweepInterval = time.Minute
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("gatehouse store: creating directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("gatehouse store %s is locked by another process (is another Caddy running with the same data directory?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("gatehouse store: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketSets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("gatehouse store: initialising %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opt: opt, done: make(chan struct{}), subs: map[string]map[*subscriber]struct{}{}}
	s.wg.Add(1)
	go s.sweeper()
	return s, nil
}

func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.opt.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if _, err := s.Sweep(); err != nil && !errors.Is(err, store.ErrClosed) {
				s.opt.Logger.Error("gatehouse store: sweeping expired records", "error", err)
			}
		}
	}
}

// Sweep deletes expired records now and reports how many.
func (s *Store) Sweep() (int, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	now := s.opt.Now()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		for k, v := c.First(); k != nil; {
			if len(v) < 8 || expired(v, now) {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				// After Delete the cursor points at the next item.
				k, v = c.Seek(k)
				continue
			}
			k, v = c.Next()
		}
		return nil
	})
	return n, err
}

func expired(v []byte, now time.Time) bool {
	exp := binary.BigEndian.Uint64(v[:8])
	return exp != 0 && now.UnixNano() >= int64(exp)
}

func (s *Store) encode(value []byte, ttl time.Duration) []byte {
	out := make([]byte, 8+len(value))
	if ttl > 0 {
		binary.BigEndian.PutUint64(out[:8], uint64(s.opt.Now().Add(ttl).UnixNano()))
	}
	copy(out[8:], value)
	return out
}

// live returns the value stored under key in b, or nil when it is absent
// or expired. A record too short to hold its expiry is an error.
func (s *Store) live(b *bolt.Bucket, key string) ([]byte, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	if len(v) < 8 {
		return nil, fmt.Errorf("gatehouse store: record %q is corrupt (%d bytes)", key, len(v))
	}
	if expired(v, s.opt.Now()) {
		return nil, nil
	}
	return bytes.Clone(v[8:]), nil
}

func (s *Store) check(key string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if key == "" {
		return errors.New("gatehouse store: empty key")
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(_ context.Context, key string) ([]byte, error) {
	if err := s.check(key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v, err := s.live(tx.Bucket(bucketKV), key)
		if err != nil {
			return err
		}
		if v == nil {
			return store.ErrNotFound
		}
		out = v
		return nil
	})
	return out, s.wrap(err)
}

// Set implements store.Store.
func (s *Store) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Put([]byte(key), s.encode(value, ttl))
	}))
}

// Create implements store.Store.
func (s *Store) Create(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		v, err := s.live(b, key)
		if err != nil {
			return err
		}
		if v != nil {
			return store.ErrExists
		}
		return b.Put([]byte(key), s.encode(value, ttl))
	}))
}

// Delete implements store.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Delete([]byte(key))
	}))
}

// Take implements store.Store.
func (s *Store) Take(_ context.Context, key string) ([]byte, error) {
	if err := s.check(key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		v, err := s.live(b, key)
		if err != nil {
			return err
		}
		if v == nil {
			return store.ErrNotFound
		}
		out = v
		return b.Delete([]byte(key))
	})
	return out, s.wrap(err)
}

// Update implements store.Store. bbolt serialises writers, so fn runs
// exactly once.
func (s *Store) Update(_ context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	if err := s.check(key); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		old, err := s.live(b, key)
		if err != nil {
			return err
		}
		nv, err := fn(old)
		if err != nil {
			return err
		}
		if nv == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), s.encode(nv, ttl))
	}))
}

func setKey(set, member string) []byte { return []byte(set + "\x00" + member) }

// SetAdd implements store.Store.
func (s *Store) SetAdd(_ context.Context, set string, members ...string) error {
	if err := s.check(set); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSets)
		for _, m := range members {
			if err := b.Put(setKey(set, m), nil); err != nil {
				return err
			}
		}
		return nil
	}))
}

// SetRemove implements store.Store.
func (s *Store) SetRemove(_ context.Context, set string, members ...string) error {
	if err := s.check(set); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSets)
		for _, m := range members {
			if err := b.Delete(setKey(set, m)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// SetMembers implements store.Store; bbolt keeps keys sorted.
func (s *Store) SetMembers(_ context.Context, set string) ([]string, error) {
	if err := s.check(set); err != nil {
		return nil, err
	}
	out := []string{}
	prefix := []byte(set + "\x00")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSets).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[len(prefix):]))
		}
		return nil
	})
	return out, s.wrap(err)
}

// Publish implements store.Store: delivery to this process's subscribers,
// never blocking; a full subscriber misses the message (counted).
func (s *Store) Publish(_ context.Context, channel string, msg []byte) error {
	if err := s.check(channel); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs[channel] {
		select {
		case sub.ch <- bytes.Clone(msg):
		default:
			s.dropped.Add(1)
		}
	}
	return nil
}

// Subscribe implements store.Store.
func (s *Store) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := s.check(channel); err != nil {
		return nil, err
	}
	sub := &subscriber{ch: make(chan []byte, 64)}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	if s.subs[channel] == nil {
		s.subs[channel] = map[*subscriber]struct{}{}
	}
	s.subs[channel][sub] = struct{}{}
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		s.mu.Lock()
		delete(s.subs[channel], sub)
		if len(s.subs[channel]) == 0 {
			delete(s.subs, channel)
		}
		sub.close()
		s.mu.Unlock()
	}()
	return sub.ch, nil
}

// Dropped is how many pub/sub messages slow subscribers missed.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// Ping implements store.Store.
func (s *Store) Ping(context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// Close implements store.Store. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}

// wrap maps bbolt's closed-database error to store.ErrClosed.
func (s *Store) wrap(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}

var _ store.Store = (*Store)(nil)
