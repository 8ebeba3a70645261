package embedded

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Apply implements store.Store in one bbolt write transaction: the
// conditions are checked first, then the writes made; an error from
// either rolls the whole transaction back, so nothing of a failed batch
// is written.
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, op := range ops {
		if err := s.checkOp(ctx, op); err != nil {
			return err
		}
	}
	if len(ops) == 0 {
		return nil
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		kv, sets := tx.Bucket(bucketKV), tx.Bucket(bucketSets)
		for _, op := range ops {
			if err := s.checkCondition(kv, op); err != nil {
				return err
			}
		}
		for _, op := range ops {
			var err error
			switch op.Kind() {
			case store.OpPut, store.OpCreate:
				err = kv.Put([]byte(op.Key()), s.encode(op.Value(), op.TTL()))
			case store.OpDelete:
				err = kv.Delete([]byte(op.Key()))
			case store.OpSetAdd:
				err = sets.Put(setKey(op.Key(), op.Member()), nil)
			case store.OpSetRemove:
				err = sets.Delete(setKey(op.Key(), op.Member()))
			}
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

// checkOp validates op as the single-key call of the same kind would.
func (s *Store) checkOp(ctx context.Context, op store.Op) error {
	switch op.Kind() {
	case store.OpPut, store.OpCreate, store.OpDelete, store.OpAbsent, store.OpMatch:
		return s.check(ctx, op.Key())
	case store.OpSetAdd, store.OpSetRemove:
		return s.checkSet(ctx, op.Key())
	}
	return fmt.Errorf("gatehouse store: unknown op kind %d", op.Kind())
}

// checkCondition returns ErrExists or ErrConflict if op is a condition
// that does not hold in kv; other ops pass.
func (s *Store) checkCondition(kv *bolt.Bucket, op store.Op) error {
	switch op.Kind() {
	case store.OpCreate, store.OpAbsent:
		v, err := s.live(kv, op.Key())
		if err != nil {
			return err
		}
		if v != nil {
			return store.ErrExists
		}
	case store.OpMatch:
		v, err := s.live(kv, op.Key())
		if err != nil {
			return err
		}
		// live never returns nil for a present value, so nil == nil
		// means both absent.
		if (v == nil) != (op.Value() == nil) || !bytes.Equal(v, op.Value()) {
			return store.ErrConflict
		}
	}
	return nil
}
