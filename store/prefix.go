package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Prefixed is a view of a Store in which every key, set name and
// publish/subscribe channel is under one prefix: its owner (a chain
// module instance, say) cannot read or write anything outside it. Set
// members and values are not changed. Apply batches are atomic as on the
// backend, since every op is rewritten before the one Apply call.
//
// Closing a view ends its subscriptions and refuses later calls with
// ErrClosed; it does not close the backend, which the view does not own.
type Prefixed struct {
	base   Store
	prefix string
	closed atomic.Bool
	done   context.Context
	cancel context.CancelFunc
}

// WithPrefix returns the view of base under prefix. The prefix must not
// be empty, and two owners must not be given prefixes where one starts
// with the other (build them from an escaped name plus a separator).
func WithPrefix(base Store, prefix string) *Prefixed {
	if prefix == "" {
		panic("store: empty prefix")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Prefixed{base: base, prefix: prefix, done: ctx, cancel: cancel}
}

// Prefix is the view's prefix.
func (p *Prefixed) Prefix() string { return p.prefix }

// key prefixes k; an empty key stays empty, so that the backend refuses
// it as it would without the view.
func (p *Prefixed) key(k string) string {
	if k == "" {
		return ""
	}
	return p.prefix + k
}

func (p *Prefixed) check() error {
	if p.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Get implements Store.
func (p *Prefixed) Get(ctx context.Context, key string) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.base.Get(ctx, p.key(key))
}

// Set implements Store.
func (p *Prefixed) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Set(ctx, p.key(key), value, ttl)
}

// Create implements Store.
func (p *Prefixed) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Create(ctx, p.key(key), value, ttl)
}

// Delete implements Store.
func (p *Prefixed) Delete(ctx context.Context, key string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Delete(ctx, p.key(key))
}

// Take implements Store.
func (p *Prefixed) Take(ctx context.Context, key string) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.base.Take(ctx, p.key(key))
}

// Update implements Store.
func (p *Prefixed) Update(ctx context.Context, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Update(ctx, p.key(key), ttl, fn)
}

// SetAdd implements Store; the set's name is prefixed, its members are not.
func (p *Prefixed) SetAdd(ctx context.Context, set string, members ...string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.SetAdd(ctx, p.key(set), members...)
}

// SetRemove implements Store.
func (p *Prefixed) SetRemove(ctx context.Context, set string, members ...string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.SetRemove(ctx, p.key(set), members...)
}

// SetMembers implements Store.
func (p *Prefixed) SetMembers(ctx context.Context, set string) ([]string, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return p.base.SetMembers(ctx, p.key(set))
}

// Apply implements Store: every op's key (or set name) is prefixed, and
// the batch goes to the backend as one Apply.
func (p *Prefixed) Apply(ctx context.Context, ops ...Op) error {
	if err := p.check(); err != nil {
		return err
	}
	out := make([]Op, len(ops))
	for i, o := range ops {
		o.key = p.key(o.key) // an invalid op stays invalid
		out[i] = o
	}
	return p.base.Apply(ctx, out...)
}

// Publish implements Store on the prefixed channel.
func (p *Prefixed) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Publish(ctx, p.key(channel), msg)
}

// Subscribe implements Store on the prefixed channel; the subscription
// also ends when the view is closed.
func (p *Prefixed) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.done, cancel)
	context.AfterFunc(sctx, func() { stop() })
	ch, err := p.base.Subscribe(sctx, p.key(channel))
	if err != nil {
		cancel()
		return nil, err
	}
	return ch, nil
}

// Scan implements Store within the view: keys and set names are
// reported without the view's prefix.
func (p *Prefixed) Scan(ctx context.Context, prefix string, fn func(Record) error) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Scan(ctx, p.prefix+prefix, func(r Record) error {
		r.Key = r.Key[len(p.prefix):]
		return fn(r)
	})
}

// Ping implements Store.
func (p *Prefixed) Ping(ctx context.Context) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.base.Ping(ctx)
}

// Close ends the view (not the backend): its subscriptions end and later
// calls get ErrClosed. Closing twice is fine.
func (p *Prefixed) Close() error {
	p.closed.Store(true)
	p.cancel()
	return nil
}

// Adopt brings a record its owner kept before it had a prefix into the
// view: when key is absent in the view and the unprefixed key legacy
// exists in the backend, legacy's value is written to key (with ttl, 0
// for none) and, when move is set, legacy is deleted, in one atomic
// batch. It reports whether it adopted a record. Of two owners adopting
// the same legacy record at once, one wins and the other finds key
// present (or legacy gone) and adopts nothing.
func (p *Prefixed) Adopt(ctx context.Context, key, legacy string, ttl time.Duration, move bool) (bool, error) {
	if err := p.check(); err != nil {
		return false, err
	}
	v, err := p.base.Get(ctx, legacy)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	ops := []Op{Match(legacy, v), Create(p.key(key), v, ttl)}
	if move {
		ops = append(ops, Delete(legacy))
	}
	err = p.base.Apply(ctx, ops...)
	if errors.Is(err, ErrExists) || errors.Is(err, ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

var _ Store = (*Prefixed)(nil)
