package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-idp/gatehouse/store"
)

// pingFails is a store whose Ping fails while down is set.
type pingFails struct {
	store.Store
	down *atomic.Bool
}

func (s pingFails) Ping(ctx context.Context) error {
	if s.down.Load() {
		return errors.New("dial tcp 10.0.0.1:6379: connection refused")
	}
	return s.Store.Ping(ctx)
}

// /healthz is 200 while the store answers, 503 when it does not (the
// reason only in the log), for GET and HEAD only.
func TestHealth(t *testing.T) {
	down := &atomic.Bool{}
	e := newEnvWith(t, envSetup{wrap: func(st store.Store) store.Store { return pingFails{st, down} }})
	get := func() (int, map[string]any) {
		resp, err := http.Get(e.issuer + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("cache-control %q", resp.Header.Get("Cache-Control"))
		}
		return resp.StatusCode, out
	}
	if st, out := get(); st != 200 || out["status"] != "ok" {
		t.Fatalf("healthy: %d %v", st, out)
	}
	down.Store(true)
	st, out := get()
	checks, _ := out["checks"].(map[string]any)
	if st != http.StatusServiceUnavailable || out["status"] != "unavailable" || checks["store"] != "unreachable" || checks["keys"] != "ok" {
		t.Fatalf("store down: %d %v", st, out)
	}
	if b, _ := json.Marshal(out); strings.Contains(string(b), "10.0.0.1") {
		t.Fatalf("the reason leaks: %s", b)
	}
	resp, err := http.Post(e.issuer+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}
