package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/metrics"
	"github.com/gatehouse-idp/gatehouse/store"
)

// A scan is timed without the caller's own work in fn (an export
// waiting on its HTTP client), and fn's error is not the store's.
func TestScanTimedWithoutCallback(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ms := memstore.New()
	defer ms.Close()
	ms.Set(ctx, "a", []byte("1"), 0)
	ms.Set(ctx, "b", []byte("2"), 0)
	st := m.Store(ms)
	if err := st.Scan(ctx, "", func(store.Record) error { time.Sleep(100 * time.Millisecond); return nil }); err != nil {
		t.Fatal(err)
	}
	mine := errors.New("stop")
	if err := st.Scan(ctx, "", func(store.Record) error { return mine }); !errors.Is(err, mine) {
		t.Fatalf("Scan = %v", err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64 // of the scan histogram
	var sum float64
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetValue() == "scan" && strings.HasSuffix(f.GetName(), "store_errors_total") {
					t.Fatal("fn's own error counted as a store error")
				}
				if h := mt.GetHistogram(); l.GetValue() == "scan" && h != nil {
					count, sum = h.GetSampleCount(), h.GetSampleSum()
				}
			}
		}
	}
	if count != 2 {
		t.Fatalf("scan histogram has %d samples, want 2", count)
	}
	if sum <= 0 || sum > 0.05 {
		t.Fatalf("scans measured %.3fs together, want the store's time only (fn slept 0.2s)", sum)
	}
}
