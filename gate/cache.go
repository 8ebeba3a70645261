package gate

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

var randRead = rand.Read

// cache holds gate sessions in memory. It is shared by every gate on the
// same store (several routes of one site share their sessions), and
// entries are dropped on every instance through the store's pub/sub
// channel when a session ends.
type cache struct {
	st store.Store
	mu sync.RWMutex
	m  map[string]*entry
}

type entry struct {
	s      *Session
	loaded time.Time
	// assertion is the signed JWT for this session and its expiry.
	assertion    string
	assertionExp time.Time
	amu          sync.Mutex
}

const (
	maxCacheEntries = 100_000
	channelRevoke   = "gate-revoke"
)

var (
	cachesMu sync.Mutex
	caches   = map[store.Store]*cache{}
)

// sharedCache returns the cache for st, subscribing to revocations once.
func sharedCache(st store.Store) *cache {
	cachesMu.Lock()
	defer cachesMu.Unlock()
	if c, ok := caches[st]; ok {
		return c
	}
	c := &cache{st: st, m: map[string]*entry{}}
	caches[st] = c
	ch, err := st.Subscribe(context.Background(), channelRevoke)
	if err == nil {
		go func() {
			for msg := range ch {
				c.mu.Lock()
				delete(c.m, string(msg))
				c.mu.Unlock()
			}
			cachesMu.Lock()
			if caches[st] == c {
				delete(caches, st)
			}
			cachesMu.Unlock()
		}()
	}
	return c
}

func (c *cache) get(id string) *entry {
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	return e
}

func (c *cache) put(id string, e *entry) {
	c.mu.Lock()
	if len(c.m) >= maxCacheEntries {
		for k := range c.m { // evict an arbitrary tenth
			delete(c.m, k)
			if len(c.m) < maxCacheEntries*9/10 {
				break
			}
		}
	}
	c.m[id] = e
	c.mu.Unlock()
}

// forget drops id here and, through pub/sub, on every instance.
func (c *cache) forget(ctx context.Context, id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
	_ = c.st.Publish(ctx, channelRevoke, []byte(id))
}

// session returns the live gate session of r, or nil. An error means the
// store failed: the caller fails closed.
func (g *Gate) session(r *http.Request) (*Session, error) {
	id, _ := g.cookies.decode(r, r.Host)
	if id == "" {
		return nil, nil
	}
	e, err := g.entry(r.Context(), id)
	if e == nil || err != nil {
		return nil, err
	}
	return e.s, nil
}

func (g *Gate) entry(ctx context.Context, id string) (*entry, error) {
	now := g.cfg.Now()
	if e := g.cache.get(id); e != nil && now.Sub(e.loaded) < g.cfg.CacheTTL {
		if now.After(e.s.Expires) {
			return nil, nil
		}
		return e, nil
	}
	s, err := g.load(ctx, id)
	if s == nil || err != nil {
		return nil, err
	}
	if g.cfg.Refresh != nil {
		if err := g.cfg.Refresh(ctx, s); errors.Is(err, ErrUserGone) {
			g.drop(ctx, id)
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	e := &entry{s: s, loaded: now}
	g.cache.put(id, e)
	return e, nil
}

// load reads a session from the store (nil when gone or expired).
func (g *Gate) load(ctx context.Context, id string) (*Session, error) {
	b, err := g.cfg.Store.Get(ctx, keySession+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if g.cfg.Now().After(s.Expires) {
		return nil, nil
	}
	return &s, nil
}
