package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/store"
)

// applyScript runs a batch atomically on the server (a script runs
// alone). KEYS[i] is op i's prefixed key; ARGV[4i-3..4i] are its kind
// (one letter, see opCode), value, ttl in milliseconds (0: none) and set
// member. The first loop checks every condition against the state before
// the batch, the second makes the writes in order.
var applyScript = goredis.NewScript(`
for i = 1, #KEYS do
	local kind, k = ARGV[4*i-3], KEYS[i]
	if kind == 'C' or kind == 'A' then
		if redis.call('EXISTS', k) == 1 then return 'exists' end
	elseif kind == 'M' then
		if redis.call('GET', k) ~= ARGV[4*i-2] then return 'conflict' end
	elseif kind == 'N' then
		if redis.call('EXISTS', k) == 1 then return 'conflict' end
	end
end
for i = 1, #KEYS do
	local kind, k = ARGV[4*i-3], KEYS[i]
	if kind == 'P' or kind == 'C' then
		local ttl = tonumber(ARGV[4*i-1])
		if ttl > 0 then
			redis.call('SET', k, ARGV[4*i-2], 'PX', ttl)
		else
			redis.call('SET', k, ARGV[4*i-2])
		end
	elseif kind == 'D' then
		redis.call('DEL', k)
	elseif kind == 'S' then
		redis.call('SADD', k, ARGV[4*i])
	elseif kind == 'R' then
		redis.call('SREM', k, ARGV[4*i])
	end
end
return 'ok'
`)

// opCode is the script's letter for each op kind. Match of nil ("must be
// absent") has a letter of its own, 'N': in ARGV a nil value and an empty
// one look the same.
var opCode = map[store.OpKind]string{
	store.OpPut:       "P",
	store.OpCreate:    "C",
	store.OpDelete:    "D",
	store.OpAbsent:    "A",
	store.OpMatch:     "M",
	store.OpSetAdd:    "S",
	store.OpSetRemove: "R",
}

// Apply implements store.Store with one Lua script, so the batch is
// atomic on the server. In Redis Cluster every key of a batch must hash
// to one slot, which the hash-tagged prefix (see Options.Prefix) ensures.
func (s *Store) Apply(ctx context.Context, ops ...store.Op) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	keys := make([]string, len(ops))
	args := make([]any, 0, 4*len(ops))
	for i, op := range ops {
		code, ok := opCode[op.Kind()]
		if !ok {
			return fmt.Errorf("gatehouse store: unknown op kind %d", op.Kind())
		}
		var err error
		if op.Kind() == store.OpSetAdd || op.Kind() == store.OpSetRemove {
			keys[i], err = s.setKey(op.Key())
		} else {
			keys[i], err = s.key(op.Key())
		}
		if err != nil {
			return err
		}
		if op.Kind() == store.OpMatch && op.Value() == nil {
			code = "N"
		}
		args = append(args, code, op.Value(), ttlMillis(op.TTL()), op.Member())
	}
	if len(ops) == 0 {
		return nil
	}
	res, err := applyScript.Run(ctx, s.c, keys, args...).Text()
	if err != nil {
		return s.wrap(err)
	}
	switch res {
	case "ok":
		return nil
	case "exists":
		return store.ErrExists
	case "conflict":
		return store.ErrConflict
	}
	return fmt.Errorf("gatehouse store: redis: unexpected reply %q from the batch script", res)
}

// ttlMillis is ttl as the script's ARGV wants it: whole milliseconds, 0
// for no expiry. Like go-redis's Set, a positive ttl under a millisecond
// becomes 1ms rather than none.
func ttlMillis(ttl time.Duration) string {
	if ttl <= 0 {
		return "0"
	}
	return strconv.FormatInt(max(ttl.Milliseconds(), 1), 10)
}
