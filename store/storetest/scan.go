package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// scanAll collects what Scan reports under prefix, failing the test on a
// record reported twice.
func scanAll(t *testing.T, s store.Store, prefix string) (values map[string]store.Record, sets map[string][]string) {
	t.Helper()
	values, sets = map[string]store.Record{}, map[string][]string{}
	err := s.Scan(context.Background(), prefix, func(r store.Record) error {
		if r.IsSet() {
			if _, dup := sets[r.Key]; dup {
				t.Errorf("set %q reported twice", r.Key)
			}
			sets[r.Key] = r.Members
			return nil
		}
		if _, dup := values[r.Key]; dup {
			t.Errorf("key %q reported twice", r.Key)
		}
		values[r.Key] = r
		return nil
	})
	must(t, err)
	return values, sets
}

func runScan(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("Scan", func(t *testing.T) {
		s := newStore(t)
		bin := []byte{0, 1, 2, 255, 0}
		must(t, s.Set(ctx, "a:plain", []byte("v"), 0))
		must(t, s.Set(ctx, "a:ttl", []byte("t"), time.Hour))
		must(t, s.Set(ctx, "a:empty", []byte{}, 0))
		must(t, s.Set(ctx, "a:b\x00c", bin, 0))
		must(t, s.Set(ctx, "a:short", []byte("gone"), shortTTL))
		must(t, s.Set(ctx, "a:deleted", []byte("x"), 0))
		must(t, s.Delete(ctx, "a:deleted"))
		must(t, s.SetAdd(ctx, "a:set", "m2", "m1", "m\x00bin"))
		must(t, s.SetAdd(ctx, "a:emptied", "x"))
		must(t, s.SetRemove(ctx, "a:emptied", "x"))
		must(t, s.SetAdd(ctx, "a:plain", "same-name-as-a-key"))
		waitGone(t, s, "a:short")

		values, sets := scanAll(t, s, "")
		if got, want := slices.Sorted(maps.Keys(values)), []string{"a:b\x00c", "a:empty", "a:plain", "a:ttl"}; !slices.Equal(got, want) {
			t.Fatalf("keys %q, want %q (expired and deleted keys left out)", got, want)
		}
		if got, want := slices.Sorted(maps.Keys(sets)), []string{"a:plain", "a:set"}; !slices.Equal(got, want) {
			t.Fatalf("sets %q, want %q (an emptied set left out)", got, want)
		}
		if r := values["a:plain"]; string(r.Value) != "v" || r.TTL != 0 || r.IsSet() {
			t.Errorf("a:plain = %+v", r)
		}
		if r := values["a:ttl"]; r.TTL <= time.Hour-time.Minute || r.TTL > time.Hour {
			t.Errorf("a:ttl remaining TTL %v, want just under 1h", r.TTL)
		}
		if r := values["a:empty"]; r.Value == nil || len(r.Value) != 0 {
			t.Errorf("empty value reported as %#v, want empty and not nil", r.Value)
		}
		if r := values["a:b\x00c"]; !bytes.Equal(r.Value, bin) {
			t.Errorf("binary value %v", r.Value)
		}
		if got := sets["a:set"]; !slices.Equal(got, []string{"m\x00bin", "m1", "m2"}) {
			t.Errorf("set members %q, want sorted", got)
		}
	})
	t.Run("ScanPrefix", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"a", "ab", "abc", "b", "x*y", "x?y", "x[y]", `x\y`, "xz"} {
			must(t, s.Set(ctx, k, []byte(k), 0))
			must(t, s.SetAdd(ctx, "set:"+k, k))
		}
		cases := map[string][]string{
			"ab": {"ab", "abc"},
			"a":  {"a", "ab", "abc"},
			"x*": {"x*y"}, // glob characters are literal
			"x?": {"x?y"},
			"x[": {"x[y]"},
			`x\`: {`x\y`},
			"q":  nil,
		}
		for prefix, want := range cases {
			values, _ := scanAll(t, s, prefix)
			if got := slices.Sorted(maps.Keys(values)); !slices.Equal(got, want) {
				t.Errorf("Scan(%q) keys %q, want %q", prefix, got, want)
			}
			_, sets := scanAll(t, s, "set:"+prefix)
			if got := slices.Sorted(maps.Keys(sets)); len(got) != len(want) {
				t.Errorf("Scan(%q) sets %q, want %d", "set:"+prefix, got, len(want))
			}
		}
	})
	t.Run("ScanMany", func(t *testing.T) {
		// More than any backend's batch, and fn writing to the store
		// while it runs (it must not hold a lock fn needs).
		s := newStore(t)
		const n = 1200
		var ops []store.Op
		for i := range n {
			ops = append(ops, store.Put(fmt.Sprintf("k%04d", i), []byte{byte(i)}, 0))
			if i%2 == 0 {
				ops = append(ops, store.SetAdd(fmt.Sprintf("s%04d", i), "a"), store.SetAdd(fmt.Sprintf("s%04d", i), "b"))
			}
		}
		must(t, s.Apply(ctx, ops...))
		keys, sets := 0, 0
		err := s.Scan(ctx, "", func(r store.Record) error {
			if r.IsSet() {
				sets++
				if len(r.Members) != 2 {
					return fmt.Errorf("set %s has %q", r.Key, r.Members)
				}
				return nil
			}
			keys++
			if r.Key[0] != 'k' {
				return nil
			}
			return s.Set(ctx, "z"+r.Key, r.Value, 0) // ahead of the scan: may be seen or not
		})
		must(t, err)
		if sets != n/2 || keys < n || keys > 2*n {
			t.Fatalf("scanned %d keys and %d sets, want at least %d and %d", keys, sets, n, n/2)
		}
		values, _ := scanAll(t, s, "k")
		if len(values) != n {
			t.Fatalf("%d keys under k after the scan, want %d", len(values), n)
		}
	})
	t.Run("ScanStops", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Set(ctx, "a", []byte("1"), 0))
		must(t, s.Set(ctx, "b", []byte("2"), 0))
		stop := errors.New("enough")
		calls := 0
		err := s.Scan(ctx, "", func(store.Record) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Scan = %v after %d calls; want fn's error after 1", err, calls)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Scan(cctx, "", func(store.Record) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Scan with a cancelled context: %v", err)
		}
	})
}
