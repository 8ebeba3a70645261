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
	// ErrExists: Create (or a Create or Absent step of Apply) found the
	// key already present.
	ErrExists = errors.New("store: already exists")
	// ErrConflict: a Match step of Apply did not hold (another writer
	// changed the key).
	ErrConflict = errors.New("store: conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// Store is a key-value store with TTLs, atomic one-shot reads, atomic
// read-modify-write, string sets for indexes, atomic multi-key batches,
// and publish/subscribe.
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

	// Apply runs ops as one atomic batch: every condition (Create, Absent,
	// Match) is checked first against the state before the batch, and only
	// if all hold are the writes made, in order, all together; otherwise
	// nothing is written and Apply returns ErrExists or ErrConflict
	// (possibly wrapped). Other readers never see part of a batch. An empty
	// batch is a no-op. A key may appear more than once (later writes win).
	Apply(ctx context.Context, ops ...Op) error

	// Publish sends msg to every current subscriber of channel, in this
	// process and (for shared backends) in every other instance.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe delivers messages published on channel until ctx is done.
	// Messages may be dropped for a subscriber that does not keep up; the
	// channel is closed when ctx is done or the store is closed.
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)

	// Scan calls fn once for every live record whose key, or set name,
	// starts with prefix ("" for all): each key with its value and
	// remaining time to live, each non-empty set with its members. It is
	// for backups and migrations (it reads the whole key space under
	// prefix), never for a request path.
	//
	// Scan reads in batches and is not a snapshot: a record written or
	// deleted while it runs may or may not be reported, but a record live
	// for the whole scan is reported exactly once. fn runs outside any
	// transaction or lock of the backend, so it may call the store. The
	// order is unspecified. If fn returns an error, Scan stops and
	// returns it.
	Scan(ctx context.Context, prefix string, fn func(Record) error) error

	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}

// Record is one live record as Scan reports it: a key and its value, or
// a set (Members not nil). Its slices belong to the callee.
type Record struct {
	// Key is the key, or the set's name.
	Key string
	// Value is a key's value (never nil for a key; nil for a set).
	Value []byte
	// TTL is a key's remaining time to live when it was read; 0 means no
	// expiry (sets never expire).
	TTL time.Duration
	// Members are a set's members in lexical order (nil for a key).
	Members []string
}

// IsSet reports whether r is a set rather than a key.
func (r Record) IsSet() bool { return r.Members != nil }

// OpKind is what an Op does. The zero OpKind is no valid kind, so a zero
// Op is refused by every backend.
type OpKind uint8

// The kinds of Op, one per constructor.
const (
	OpPut       OpKind = iota + 1 // Put: write the value
	OpCreate                      // Create: condition (absent) and write
	OpDelete                      // Delete: remove the key
	OpAbsent                      // Absent: condition only
	OpMatch                       // Match: condition only
	OpSetAdd                      // SetAdd: add a member to a set
	OpSetRemove                   // SetRemove: remove a member from a set
)

// Op is one step of an atomic batch (see Store.Apply). Build it with Put,
// Create, Delete, Absent, Match, SetAdd or SetRemove. Values are not
// copied: do not modify them until Apply has returned.
type Op struct {
	kind   OpKind
	key    string // the key, or the set name for OpSetAdd and OpSetRemove
	value  []byte
	ttl    time.Duration
	member string
}

// Put writes value under key, like Store.Set (ttl <= 0: no expiry).
func Put(key string, value []byte, ttl time.Duration) Op {
	return Op{kind: OpPut, key: key, value: value, ttl: ttl}
}

// Create writes value under key only if key is absent (an expired key
// counts as absent); otherwise the whole batch fails with ErrExists.
func Create(key string, value []byte, ttl time.Duration) Op {
	return Op{kind: OpCreate, key: key, value: value, ttl: ttl}
}

// Delete removes key, like Store.Delete (a missing key is fine).
func Delete(key string) Op { return Op{kind: OpDelete, key: key} }

// Absent is a condition only: key must be absent (or expired), otherwise
// the whole batch fails with ErrExists. It writes nothing.
func Absent(key string) Op { return Op{kind: OpAbsent, key: key} }

// Match is a condition only: the live value of key must equal value byte
// for byte, otherwise the whole batch fails with ErrConflict. A nil value
// means "key must be absent" (an empty, non-nil value means "present and
// empty"). It writes nothing: with Put it makes a compare-and-swap.
func Match(key string, value []byte) Op { return Op{kind: OpMatch, key: key, value: value} }

// SetAdd adds member to the set named set, like Store.SetAdd.
func SetAdd(set, member string) Op { return Op{kind: OpSetAdd, key: set, member: member} }

// SetRemove removes member from the set named set, like Store.SetRemove.
func SetRemove(set, member string) Op { return Op{kind: OpSetRemove, key: set, member: member} }

// Kind reports what the op does; backends switch on it.
func (o Op) Kind() OpKind { return o.kind }

// Key is the key the op reads or writes, or the set name for OpSetAdd and
// OpSetRemove.
func (o Op) Key() string { return o.key }

// Value is the value written (OpPut, OpCreate) or compared (OpMatch; nil
// there means "must be absent"). Backends must not modify it.
func (o Op) Value() []byte { return o.value }

// TTL is the expiry of a written value (OpPut, OpCreate); <= 0 is none.
func (o Op) TTL() time.Duration { return o.ttl }

// Member is the set member of OpSetAdd and OpSetRemove.
func (o Op) Member() string { return o.member }
