// Package embedded is the zero set-up store: one bbolt file, normally in
// Caddy's data directory. It serves a single process (bbolt locks the
// file); publish/subscribe stays inside that process.
//
// Every value is stored behind an 8-byte big-endian expiry (Unix
// nanoseconds, 0 for none). Expired records are invisible at once and
// deleted by a sweeper in the background. Set members are keys
// "name\x00member" in a bucket of their own, without expiry.
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
	"strings"
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

// headerLen is the size of the expiry prefix of every stored value.
const headerLen = 8

// subBuffer is how many messages a subscriber may fall behind before it
// starts missing them.
const subBuffer = 64

// Options tune a Store; the zero value is fine.
type Options struct {
	// SweepInterval is how often expired records are deleted. Default 1m.
	SweepInterval time.Duration
	// Now is the clock used for expiry; default time.Now.
	Now func() time.Time
	// Logger receives sweeper errors; default slog.Default().
	Logger *slog.Logger
}

// Store is the bbolt-backed store.Store. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	path   string
	opt    Options
	closed atomic.Bool
	done   chan struct{} // closed by Close; stops the sweeper
	wg     sync.WaitGroup

	mu      sync.Mutex // guards subs and orders Publish/Subscribe with Close
	subs    map[string]map[*subscriber]struct{}
	dropped atomic.Uint64
}

// subscriber is one Subscribe call. ch is closed exactly once, under
// Store.mu, so Publish never sends on a closed channel.
type subscriber struct {
	ch   chan []byte
	stop func() bool // releases the context.AfterFunc registration
}

// Open opens or creates the store file at path, creating missing parent
// directories (mode 0700) and the file (mode 0600). If another process
// holds the file, Open fails after about a second.
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
	s := &Store{
		db:   db,
		path: path,
		opt:  opt,
		done: make(chan struct{}),
		subs: map[string]map[*subscriber]struct{}{},
	}
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
				s.opt.Logger.Error("gatehouse store: sweeping expired records", "path", s.path, "error", err)
			}
		}
	}
}

// Sweep deletes expired records now and reports how many it deleted.
// Records too short to hold an expiry (which every read reports as
// corrupt) are deleted too, and logged.
func (s *Store) Sweep() (int, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	now := s.opt.Now()
	var n int
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		var dead [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(v) < headerLen {
				s.opt.Logger.Warn("gatehouse store: deleting corrupt record", "path", s.path, "key", string(k), "bytes", len(v))
			} else if !expired(v, now) {
				return nil
			}
			dead = append(dead, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(dead)
		return nil
	})
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// expired reports whether the record v (at least headerLen bytes) has an
// expiry at or before now.
func expired(v []byte, now time.Time) bool {
	exp := binary.BigEndian.Uint64(v[:headerLen])
	return exp != 0 && now.UnixNano() >= int64(exp)
}

// encode prefixes value with its expiry; ttl <= 0 means none.
func (s *Store) encode(value []byte, ttl time.Duration) []byte {
	out := make([]byte, headerLen+len(value))
	if ttl > 0 {
		binary.BigEndian.PutUint64(out[:headerLen], uint64(s.opt.Now().Add(ttl).UnixNano()))
	}
	copy(out[headerLen:], value)
	return out
}

// live returns a copy of the value stored under key in b, or nil when it
// is absent or expired. A present value is never nil (an empty value is
// an empty, non-nil slice). A record too short to hold its expiry is an
// error.
func (s *Store) live(b *bolt.Bucket, key string) ([]byte, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	if len(v) < headerLen {
		return nil, fmt.Errorf("gatehouse store: record %q is corrupt (%d bytes, want at least %d)", key, len(v), headerLen)
	}
	if expired(v, s.opt.Now()) {
		return nil, nil
	}
	return append([]byte{}, v[headerLen:]...), nil
}

// check is the common preamble of every operation.
func (s *Store) check(ctx context.Context, key string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return errors.New("gatehouse store: empty key")
	}
	return nil
}

// checkSet is check for set names, which may not contain NUL: it
// separates the name from the member in the sets bucket.
func (s *Store) checkSet(ctx context.Context, set string) error {
	if err := s.check(ctx, set); err != nil {
		return err
	}
	if strings.IndexByte(set, 0) >= 0 {
		return fmt.Errorf("gatehouse store: set name %q contains a NUL byte", set)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.check(ctx, key); err != nil {
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
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(ctx, key); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Put([]byte(key), s.encode(value, ttl))
	}))
}

// Create implements store.Store. An expired record counts as absent.
func (s *Store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(ctx, key); err != nil {
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
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx, key); err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).Delete([]byte(key))
	}))
}

// Take implements store.Store. bbolt serialises write transactions, so
// of concurrent Takes exactly one sees the value.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	if err := s.check(ctx, key); err != nil {
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
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Update implements store.Store. bbolt serialises write transactions, so
// fn runs exactly once, inside the write lock.
func (s *Store) Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	if err := s.check(ctx, key); err != nil {
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
func (s *Store) SetAdd(ctx context.Context, set string, members ...string) error {
	if err := s.checkSet(ctx, set); err != nil {
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
func (s *Store) SetRemove(ctx context.Context, set string, members ...string) error {
	if err := s.checkSet(ctx, set); err != nil {
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

// SetMembers implements store.Store; bbolt keeps keys in byte order, so
// the members come out sorted.
func (s *Store) SetMembers(ctx context.Context, set string) ([]string, error) {
	if err := s.checkSet(ctx, set); err != nil {
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
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Publish implements store.Store: delivery to this process's subscribers,
// never blocking; a subscriber whose buffer is full misses the message
// (see Dropped).
func (s *Store) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := s.check(ctx, channel); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	for sub := range s.subs[channel] {
		select {
		case sub.ch <- bytes.Clone(msg):
		default:
			s.dropped.Add(1)
		}
	}
	return nil
}

// Subscribe implements store.Store. Each subscriber has a buffer of 64
// messages.
func (s *Store) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := s.check(ctx, channel); err != nil {
		return nil, err
	}
	sub := &subscriber{ch: make(chan []byte, subBuffer)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if s.subs[channel] == nil {
		s.subs[channel] = map[*subscriber]struct{}{}
	}
	s.subs[channel][sub] = struct{}{}
	// Runs in its own goroutine once ctx is done (at once if it already
	// is); Close stops it instead.
	sub.stop = context.AfterFunc(ctx, func() { s.unsubscribe(channel, sub) })
	return sub.ch, nil
}

func (s *Store) unsubscribe(channel string, sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.subs[channel]
	if _, ok := subs[sub]; !ok {
		return // already closed by Close
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(s.subs, channel)
	}
	close(sub.ch)
}

// Dropped reports how many pub/sub messages slow subscribers have missed.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// Close implements store.Store: it closes every subscription, stops the
// sweeper and closes the file (waiting for running transactions). It is
// safe to call more than once; later calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	close(s.done)
	for _, subs := range s.subs {
		for sub := range subs {
			sub.stop()
			close(sub.ch)
		}
	}
	s.subs = nil
	s.mu.Unlock()
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("gatehouse store: closing %s: %w", s.path, err)
	}
	return nil
}

// wrap maps bbolt's closed-database error to store.ErrClosed and prefixes
// other bbolt errors; the store's own sentinels and errors returned by an
// Update fn pass through unchanged.
func (s *Store) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		return store.ErrClosed
	case errors.Is(err, bolterrors.ErrKeyTooLarge), errors.Is(err, bolterrors.ErrValueTooLarge),
		errors.Is(err, bolterrors.ErrDatabaseReadOnly), errors.Is(err, bolterrors.ErrTxClosed):
		return fmt.Errorf("gatehouse store: %s: %w", s.path, err)
	}
	return err
}

var _ store.Store = (*Store)(nil)
