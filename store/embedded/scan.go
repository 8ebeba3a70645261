package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gatehouse-idp/gatehouse/store"
)

// scanBatch is how many keys (or sets) one read transaction of Scan
// copies out. Batches keep read transactions short: a long one would
// stop bbolt from growing the file, and so hold up every writer.
const scanBatch = 256

// Scan implements store.Store: keys in byte order, then sets in byte
// order, each batch read in its own short transaction and handed to fn
// after that transaction ended.
func (s *Store) Scan(ctx context.Context, prefix string, fn func(store.Record) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := s.scanKeys(ctx, prefix, fn); err != nil {
		return err
	}
	return s.scanSets(ctx, prefix, fn)
}

func (s *Store) scanKeys(ctx context.Context, prefix string, fn func(store.Record) error) error {
	var last []byte // the last key read; nil before the first batch
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []store.Record
		more := false
		err := s.db.View(func(tx *bolt.Tx) error {
			now := s.opt.Now()
			c := tx.Bucket(bucketKV).Cursor()
			seek := []byte(prefix)
			if last != nil {
				seek = last
			}
			k, v := c.Seek(seek)
			if last != nil && bytes.Equal(k, last) {
				k, v = c.Next()
			}
			for ; k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
				if len(batch) == scanBatch {
					more = true
					return nil
				}
				last = bytes.Clone(k)
				if len(v) < headerLen || expired(v, now) {
					continue // corrupt records are the sweeper's to report
				}
				var ttl time.Duration
				if exp := int64(binary.BigEndian.Uint64(v[:headerLen])); exp != 0 {
					ttl = time.Unix(0, exp).Sub(now)
				}
				batch = append(batch, store.Record{Key: string(k), Value: bytes.Clone(v[headerLen:]), TTL: ttl})
			}
			return nil
		})
		if err != nil {
			return s.wrap(err)
		}
		if err := each(batch, fn); err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// scanSets reports the sets whose names start with prefix. The sets
// bucket holds "name\x00member" keys, so one set's members are
// consecutive; a batch always ends at the end of a set.
func (s *Store) scanSets(ctx context.Context, prefix string, fn func(store.Record) error) error {
	from := []byte(prefix)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []store.Record
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSets).Cursor()
			for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
				name, member, ok := strings.Cut(string(k), "\x00")
				if !ok {
					continue
				}
				if n := len(batch); n == 0 || batch[n-1].Key != name {
					if n == scanBatch {
						from = []byte(name + "\x00")
						return nil
					}
					batch = append(batch, store.Record{Key: name, Members: []string{}})
				}
				batch[len(batch)-1].Members = append(batch[len(batch)-1].Members, member)
			}
			from = nil
			return nil
		})
		if err != nil {
			return s.wrap(err)
		}
		if err := each(batch, fn); err != nil {
			return err
		}
		if from == nil {
			return nil
		}
	}
}

// each hands the records of a batch to fn, stopping at its first error.
func each(batch []store.Record, fn func(store.Record) error) error {
	for _, r := range batch {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
