package gate

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

var randRead = rand.Read

// cache holds gate sessions in memory, keyed by the cookie value that
// was verified for them (a hit skips even the HMAC). It is shared by
// every gate on the same store (several routes of one site share their
// sessions), and entries are dropped on every instance through the
// store's pub/sub channel when a session ends.
type cache struct {
	st    store.Store
	mu    sync.RWMutex
	byVal map[string]*entry
	byID  map[string]string // session id -> cookie value
}

type entry struct {
	s *Session
	// origin (the gate's own string for it), loaded and expires (Unix
	// nanoseconds) decide a hit without reaching into s.
	origin          string
	loaded, expires int64
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
	c := &cache{st: st, byVal: map[string]*entry{}, byID: map[string]string{}}
	caches[st] = c
	ch, err := st.Subscribe(context.Background(), channelRevoke)
	if err == nil {
		go func() {
			for msg := range ch {
				c.drop(string(msg))
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

func (c *cache) get(value string) *entry {
	c.mu.RLock()
	e := c.byVal[value]
	c.mu.RUnlock()
	return e
}

func (c *cache) getID(id string) *entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byVal[c.byID[id]]
}

func (c *cache) put(value string, e *entry) {
	c.mu.Lock()
	if len(c.byVal) >= maxCacheEntries {
		for v, x := range c.byVal { // evict an arbitrary tenth
			delete(c.byVal, v)
			delete(c.byID, x.s.ID)
			if len(c.byVal) < maxCacheEntries*9/10 {
				break
			}
		}
	}
	if old, ok := c.byID[e.s.ID]; ok {
		delete(c.byVal, old)
	}
	c.byVal[value] = e
	c.byID[e.s.ID] = value
	c.mu.Unlock()
}

func (c *cache) drop(id string) {
	c.mu.Lock()
	delete(c.byVal, c.byID[id])
	delete(c.byID, id)
	c.mu.Unlock()
}

// forget drops id here and, through pub/sub, on every instance.
func (c *cache) forget(ctx context.Context, id string) {
	c.drop(id)
	_ = c.st.Publish(ctx, channelRevoke, []byte(id))
}

// session returns the live gate session of r for origin, or nil. An
// error means the store failed: the caller fails closed.
func (g *Gate) session(r *http.Request, origin string) (*Session, error) {
	value, ok := cookieValue(r.Header, g.cookies.name)
	if !ok {
		return nil, nil
	}
	now := g.cfg.Now()
	if e := g.cache.get(value); e != nil && e.origin == origin && now.UnixNano()-e.loaded < int64(g.cfg.CacheTTL) {
		if now.UnixNano() > e.expires {
			return nil, nil
		}
		return e.s, nil
	}
	id := g.cookies.verify(value, origin)
	if id == "" {
		return nil, nil
	}
	s, err := g.load(r.Context(), id)
	if s == nil || err != nil {
		return nil, err
	}
	if s.Origin != origin {
		return nil, nil
	}
	if g.cfg.Refresh != nil {
		if err := g.cfg.Refresh(r.Context(), s); errors.Is(err, ErrUserGone) {
			g.forget(r.Context(), id)
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	s.joined = strings.Join(s.Groups, ",")
	g.cache.put(value, &entry{s: s, origin: origin, loaded: now.UnixNano(), expires: s.Expires.UnixNano()})
	return s, nil
}

// load reads a session from the store (nil when gone or expired).
func (g *Gate) load(ctx context.Context, id string) (*Session, error) {
	return loadSession(ctx, g.cfg.Store, id, g.cfg.Now())
}

func loadSession(ctx context.Context, st store.Store, id string, now time.Time) (*Session, error) {
	b, err := st.Get(ctx, keySession+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if now.After(s.Expires) {
		return nil, nil
	}
	return &s, nil
}
