package breaker

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
)

// failingScan is a backend whose Scan times out.
type failingScan struct{ store.Store }

func (failingScan) Scan(context.Context, string, func(store.Record) error) error { return errTimeout }

// A scan that times out counts as a failure and an open breaker refuses
// scans; the caller's own error from fn does not count.
func TestScanCounts(t *testing.T) {
	ctx := context.Background()
	ms := memstore.New()
	defer ms.Close()
	if err := ms.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	ok := Wrap(ms, Options{Threshold: 1})
	mine := errors.New("stop")
	for range 3 {
		if err := ok.Scan(ctx, "", func(store.Record) error { return mine }); !errors.Is(err, mine) {
			t.Fatalf("Scan = %v, want fn's error", err)
		}
	}
	if ok.Open() {
		t.Fatal("fn's own errors opened the breaker")
	}
	bad := Wrap(failingScan{ms}, Options{Threshold: 1})
	if err := bad.Scan(ctx, "", func(store.Record) error { return nil }); !errors.Is(err, errTimeout) {
		t.Fatalf("Scan = %v", err)
	}
	if !bad.Open() {
		t.Fatal("a timed-out scan did not count")
	}
	if err := bad.Scan(ctx, "", func(store.Record) error { return nil }); !errors.Is(err, ErrOpen) {
		t.Fatalf("Scan on an open breaker = %v, want ErrOpen", err)
	}
}
