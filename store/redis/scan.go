package redis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/store"
)

// scanCount is the COUNT hint of each SCAN call: about how many keys one
// round trip looks at.
const scanCount = 500

// Scan implements store.Store with SCAN (never KEYS, which would block
// the server): the instance's values, then its sets, each batch read in
// one MULTI (GET and PTTL of a key agree). SCAN may return a key twice;
// Scan remembers the keys it reported (memory in proportion to the
// number of keys under prefix) so that fn sees each once.
//
// On a cluster client the keys are scanned on the primary that owns the
// prefix's hash tag, where all of them live (see Options.Prefix).
func (s *Store) Scan(ctx context.Context, prefix string, fn func(store.Record) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	var c goredis.Cmdable = s.c
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, s.prefix)
		if err != nil {
			return s.wrap(err)
		}
		c = node
	}
	if err := s.scanSpace(ctx, c, "kv:", "string", prefix, fn); err != nil {
		return err
	}
	return s.scanSpace(ctx, c, "set:", "set", prefix, fn)
}

// scanSpace scans one of the key spaces (values or sets).
func (s *Store) scanSpace(ctx context.Context, c goredis.Cmdable, space, typ, prefix string, fn func(store.Record) error) error {
	base := s.prefix + space
	match := globEscape(base+prefix) + "*"
	seen := map[string]struct{}{}
	var cursor uint64
	for {
		keys, next, err := c.ScanType(ctx, cursor, match, scanCount, typ).Result()
		if err != nil {
			return s.wrap(err)
		}
		fresh := keys[:0]
		for _, k := range keys {
			if _, dup := seen[k]; !dup && strings.HasPrefix(k, base) {
				seen[k] = struct{}{}
				fresh = append(fresh, k)
			}
		}
		recs, err := s.read(ctx, c, base, typ, fresh)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// read fetches the values (with their TTLs) or the members of keys in
// one transaction; a key gone since SCAN saw it is left out.
func (s *Store) read(ctx context.Context, c goredis.Cmdable, base, typ string, keys []string) ([]store.Record, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds, err := c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, k := range keys {
			if typ == "set" {
				p.SMembers(ctx, k)
			} else {
				p.Get(ctx, k)
				p.PTTL(ctx, k)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.wrap(err)
	}
	out := make([]store.Record, 0, len(keys))
	for i, k := range keys {
		name := k[len(base):]
		if typ == "set" {
			m := cmds[i].(*goredis.StringSliceCmd).Val()
			if len(m) > 0 {
				slices.Sort(m)
				out = append(out, store.Record{Key: name, Members: m})
			}
			continue
		}
		v, err := cmds[2*i].(*goredis.StringCmd).Bytes()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, s.wrap(err)
		}
		if v == nil {
			v = []byte{}
		}
		var ttl time.Duration
		if d := cmds[2*i+1].(*goredis.DurationCmd).Val(); d > 0 {
			ttl = d
		}
		out = append(out, store.Record{Key: name, Value: v, TTL: ttl})
	}
	return out, nil
}

// globEscape escapes the characters SCAN's MATCH pattern gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ { // bytes: a key need not be UTF-8
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
