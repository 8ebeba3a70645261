// Package redis is the store for several Gatehouse instances: Redis
// through go-redis's UniversalClient (a single server, Sentinel or
// Cluster). Publish/subscribe reaches every instance, so a logout or a
// revoked gate session is seen everywhere at once.
//
// Every key gets the configured prefix (default "gatehouse:"); Take uses
// GETDEL (Redis 6.2 or later). Apply runs its batch as one Lua script.
//
// Redis Cluster runs a script only when all its keys hash to one slot, so
// on a cluster client a prefix without '{' is made a hash tag
// ("gatehouse:" becomes "{gatehouse}:"). Every key of the store then lives
// in one slot, on one primary: the cluster gives failover, not sharding.
package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/breaker"
)

// Options select the Redis deployment.
type Options struct {
	// URL is a redis:// or rediss:// URL for a single server (with
	// password and database in it). Otherwise Addrs (and MasterName for
	// Sentinel, or several Addrs for Cluster) are used.
	URL        string
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	// Timeout bounds each call (default DefaultTimeout): a hung server
	// costs a request this long, not seconds.
	Timeout time.Duration
	// Prefix of every key and channel. Default "gatehouse:". In cluster
	// mode (several Addrs and no MasterName) a prefix without '{' is
	// wrapped in a hash tag, "gatehouse:" becoming "{gatehouse}:", so
	// that every key of an Apply batch is in one slot; a prefix that
	// already has a '{' is used as it is.
	Prefix string
}

// Store is the Redis store.Store.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	closed atomic.Bool
	done   chan struct{}
	once   sync.Once
}

// Open connects (lazily: a down server is reported by Ping and by each
// call, and the store recovers when it returns).
func Open(opt Options) (*Store, error) {
	var c goredis.UniversalClient
	if opt.URL != "" {
		o, err := goredis.ParseURL(opt.URL)
		if err != nil {
			return nil, fmt.Errorf("gatehouse store: redis URL: %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries = opt.timeouts()
		o.ContextTimeoutEnabled = true
		c = goredis.NewClient(o)
	} else {
		if len(opt.Addrs) == 0 {
			return nil, errors.New("gatehouse store: redis needs a URL or addresses")
		}
		u := &goredis.UniversalOptions{Addrs: opt.Addrs, MasterName: opt.MasterName,
			Username: opt.Username, Password: opt.Password, DB: opt.DB}
		u.DialTimeout, u.ReadTimeout, u.WriteTimeout, u.PoolTimeout, u.MaxRetries = opt.timeouts()
		u.ContextTimeoutEnabled = true
		c = goredis.NewUniversalClient(u)
	}
	return New(c, opt.Prefix), nil
}

// CallTimeout returns the per-call timeout in force.
func (opt Options) CallTimeout() time.Duration {
	if opt.Timeout <= 0 {
		return DefaultTimeout
	}
	return opt.Timeout
}

// DefaultTimeout is how long a call waits for Redis unless Options say.
const DefaultTimeout = 500 * time.Millisecond

// timeouts are the client's dial, read, write and pool timeouts and its
// retries: every call gives up after about Timeout (a dial a little
// later), and is not tried again (-1: go-redis reads 0 as its default 3)
// — a retry would double the wait for a server that does not answer.
func (opt Options) timeouts() (dial, read, write, pool time.Duration, retries int) {
	t := opt.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return max(t, time.Second), t, t, t, -1
}

// IsUnavailable reports whether err means Redis did not answer (a
// network error, a timeout, no free connection in time): what a circuit
// breaker counts.
func IsUnavailable(err error) bool {
	return breaker.IsUnavailable(err) || errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrPoolExhausted)
}

// New wraps an existing client. If c is a *goredis.ClusterClient, the
// prefix is made a hash tag as described at Options.Prefix.
func New(c goredis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = "gatehouse:"
	}
	if _, ok := c.(*goredis.ClusterClient); ok {
		prefix = hashTag(prefix)
	}
	return &Store{c: c, prefix: prefix, done: make(chan struct{})}
}

// hashTag wraps prefix, without its trailing ':', in braces, so that
// Redis Cluster hashes every key with that prefix to the same slot. A
// prefix that already contains '{' is the caller's own choice of tag and
// is kept.
func hashTag(prefix string) string {
	if strings.Contains(prefix, "{") {
		return prefix
	}
	tag := strings.TrimSuffix(prefix, ":")
	if tag == "" {
		tag = prefix // "{}" would not be a tag: Redis would hash the whole key
	}
	return "{" + tag + "}" + prefix[len(tag):]
}

// key, setKey and channel keep values, sets and channels apart (in Redis
// they share one key space).
func (s *Store) key(k string) (string, error) { return s.name("kv:", k) }

func (s *Store) setKey(k string) (string, error) { return s.name("set:", k) }

func (s *Store) channel(k string) (string, error) { return s.name("ch:", k) }

func (s *Store) name(space, k string) (string, error) {
	if s.closed.Load() {
		return "", store.ErrClosed
	}
	if k == "" {
		return "", errors.New("gatehouse store: empty key")
	}
	return s.prefix + space + k, nil
}

func (s *Store) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, goredis.Nil):
		return store.ErrNotFound
	case errors.Is(err, goredis.ErrClosed) || s.closed.Load():
		return store.ErrClosed
	}
	return fmt.Errorf("gatehouse store: redis: %w", err)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	b, err := s.c.Get(ctx, k).Bytes()
	return b, s.wrap(err)
}

// Set implements store.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.wrap(s.c.Set(ctx, k, value, max(ttl, 0)).Err())
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	ok, err := s.c.SetNX(ctx, k, value, max(ttl, 0)).Result()
	if err != nil {
		return s.wrap(err)
	}
	if !ok {
		return store.ErrExists
	}
	return nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.wrap(s.c.Del(ctx, k).Err())
}

// Take implements store.Store (GETDEL is atomic).
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	b, err := s.c.GetDel(ctx, k).Bytes()
	return b, s.wrap(err)
}

// Update implements store.Store with optimistic locking (WATCH/MULTI);
// fn may run more than once.
func (s *Store) Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	for range 100 {
		err := s.c.Watch(ctx, func(tx *goredis.Tx) error {
			old, err := tx.Get(ctx, k).Bytes()
			if errors.Is(err, goredis.Nil) {
				old, err = nil, nil
			}
			if err != nil {
				return err
			}
			nv, err := fn(old)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				if nv == nil {
					p.Del(ctx, k)
				} else {
					p.Set(ctx, k, nv, max(ttl, 0))
				}
				return nil
			})
			return err
		}, k)
		if errors.Is(err, goredis.TxFailedErr) {
			continue // another writer won; read again
		}
		if err != nil && !errors.Is(err, goredis.Nil) {
			var rerr goredis.Error
			if errors.As(err, &rerr) || errors.Is(err, goredis.ErrClosed) {
				return s.wrap(err)
			}
			return err // fn's own error, unchanged
		}
		return nil
	}
	return errors.New("gatehouse store: redis: too much contention on " + key)
}

// SetAdd implements store.Store.
func (s *Store) SetAdd(ctx context.Context, set string, members ...string) error {
	k, err := s.setKey(set)
	if err != nil || len(members) == 0 {
		return err
	}
	return s.wrap(s.c.SAdd(ctx, k, toAny(members)...).Err())
}

// SetRemove implements store.Store.
func (s *Store) SetRemove(ctx context.Context, set string, members ...string) error {
	k, err := s.setKey(set)
	if err != nil || len(members) == 0 {
		return err
	}
	return s.wrap(s.c.SRem(ctx, k, toAny(members)...).Err())
}

// SetMembers implements store.Store.
func (s *Store) SetMembers(ctx context.Context, set string) ([]string, error) {
	k, err := s.setKey(set)
	if err != nil {
		return nil, err
	}
	m, err := s.c.SMembers(ctx, k).Result()
	if err != nil {
		return nil, s.wrap(err)
	}
	slices.Sort(m)
	if m == nil {
		m = []string{}
	}
	return m, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Publish implements store.Store: every instance's subscribers get it.
func (s *Store) Publish(ctx context.Context, channel string, msg []byte) error {
	k, err := s.channel(channel)
	if err != nil {
		return err
	}
	return s.wrap(s.c.Publish(ctx, k, msg).Err())
}

// Subscribe implements store.Store. The subscription reconnects by
// itself (go-redis) when the server comes back.
func (s *Store) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	k, err := s.channel(channel)
	if err != nil {
		return nil, err
	}
	ps := s.c.Subscribe(ctx, k)
	out := make(chan []byte, 64)
	go func() {
		defer close(out)
		defer ps.Close()
		in := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- []byte(m.Payload):
				default: // a subscriber that does not keep up misses it
				}
			}
		}
	}()
	return out, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.wrap(s.c.Ping(ctx).Err())
}

// Close implements store.Store; safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.done)
		err = s.c.Close()
	})
	return err
}

var _ store.Store = (*Store)(nil)
