// Package store defines the one storage interface Gatehouse uses for
// everything it keeps: sessions, one-time codes, keys, users, clients.
//
// Backends live in subpackages (store/embedded for a single process, a file
// in Caddy's data directory) and every backend passes the conformance suite
// in store/storetest. Typed repositories (users, sessions, codes) live with
// the package that owns the data and use only this interface.
//
// This package must not import any other Gatehouse package, nor Caddy.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors every backend returns (possibly wrapped).
var (
	// ErrNotFound: the key does not exist or has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: Create found the key already present.
	ErrExists = errors.New("store: already exists")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// Store is a key-value store with TTLs, atomic one-shot reads, atomic
// read-modify-write, string sets for indexes, and publish/subscribe.
//
// A ttl of zero means "no expiry". Expired records are invisible to every
// method and are removed by the backend in the background.
type Store interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key, replacing any previous value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Create stores value under key only if key is absent; else ErrExists.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Take atomically reads and deletes key: of two concurrent Takes of the
	// same key, exactly one gets the value and the other ErrNotFound. It is
	// the primitive for one-time codes.
	Take(ctx context.Context, key string) ([]byte, error)
	// Update atomically replaces the value of key with fn(old). old is nil
	// when the key is absent. fn may run more than once (backends with
	// optimistic concurrency retry), so it must not have side effects, and
	// it must not call the store (the embedded backend holds its write lock
	// while fn runs). If fn
	// returns an error, nothing is written and Update returns that error.
	// If fn returns a nil value, the key is deleted. ttl applies to the new
	// value.
	Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error

	// SetAdd adds members to the set named set.
	SetAdd(ctx context.Context, set string, members ...string) error
	// SetRemove removes members from the set.
	SetRemove(ctx context.Context, set string, members ...string) error
	// SetMembers lists the members of the set in lexical order (empty, not
	// an error, for a missing set).
	SetMembers(ctx context.Context, set string) ([]string, error)

	// Publish sends msg to every current subscriber of channel, in this
	// process and (for shared backends) in every other instance.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe delivers messages published on channel until ctx is done.
	// Messages may be dropped for a subscriber that does not keep up; the
	// channel is closed when ctx is done or the store is closed.
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)

	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}
