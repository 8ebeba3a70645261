package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/metrics"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	h, err := users.NewHasher(users.Argon2Params{}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Watch(metrics.Sources{Audit: log, Hasher: h}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log.Record(ctx, audit.Event{Event: audit.LoginSucceeded, Modules: []string{"password", "totp"}})
	log.Record(ctx, audit.Event{Event: audit.LoginSucceeded, Modules: []string{"password"}})
	log.Record(ctx, audit.Event{Event: audit.LoginFailed, Module: "password"})
	log.Record(ctx, audit.Event{Event: audit.Banned})
	m.Grant("authorization_code")
	m.Grant("authorization_code")
	m.Grant("refresh_token")
	name := ""
	observe := m.Gate(func() string { return name })
	observe("unavailable") // before the gate knows its sites
	name = "https://app.example acr=2"
	observe("pass")
	observe("login")
	name = "changed"
	observe("pass") // the first name it got is kept

	st := m.Store(memstore.New())
	if _, err := st.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	_ = st.Set(ctx, "k", []byte("v"), 0)
	refusal := errors.New("no")
	if err := st.Update(ctx, "k", 0, func([]byte) ([]byte, error) { return nil, refusal }); !errors.Is(err, refusal) {
		t.Fatal(err)
	}
	closed := memstore.New()
	closed.Close()
	_ = m.Store(closed).Set(ctx, "k", nil, 0)

	want := `
# HELP gatehouse_logins_total Sign-ins by module and result: succeeded (a new session), step_up (more passed in a session) or failed.
# TYPE gatehouse_logins_total counter
gatehouse_logins_total{module="password",result="failed"} 1
gatehouse_logins_total{module="password",result="succeeded"} 2
gatehouse_logins_total{module="totp",result="succeeded"} 1
# HELP gatehouse_token_grants_total Tokens issued, by grant type (authorization_code, refresh_token, client_credentials, device_code, implicit).
# TYPE gatehouse_token_grants_total counter
gatehouse_token_grants_total{grant_type="authorization_code"} 2
gatehouse_token_grants_total{grant_type="refresh_token"} 1
# HELP gatehouse_gate_decisions_total Requests a gate decided, by gate (its sites and levels) and result (pass, login, step_up, forbidden, bypass, bad_path, unknown_site, unavailable).
# TYPE gatehouse_gate_decisions_total counter
gatehouse_gate_decisions_total{gate="",result="unavailable"} 1
gatehouse_gate_decisions_total{gate="https://app.example acr=2",result="login"} 1
gatehouse_gate_decisions_total{gate="https://app.example acr=2",result="pass"} 2
# HELP gatehouse_store_errors_total Store calls that failed (not counting records not found, already there or changed by another writer, nor a caller refusing an update), by operation.
# TYPE gatehouse_store_errors_total counter
gatehouse_store_errors_total{op="set"} 1
# HELP gatehouse_password_checks_capacity Password hashes that may run at once.
# TYPE gatehouse_password_checks_capacity gauge
gatehouse_password_checks_capacity 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gatehouse_logins_total", "gatehouse_token_grants_total",
		"gatehouse_gate_decisions_total", "gatehouse_store_errors_total", "gatehouse_password_checks_capacity"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "gatehouse_store_call_seconds"); n != 3 { // get, set, update (one series each)
		t.Fatalf("%d store series", n)
	}
	if n, err := testutil.GatherAndCount(reg, "gatehouse_security_events_total"); err != nil || n != 4 {
		t.Fatalf("%d event series (%v)", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	var nilSet *metrics.Set
	nilSet.Grant("x")
	if nilSet.Gate(func() string { return "" }) != nil || nilSet.Store(st) != st {
		t.Fatal("a nil set changes something")
	}
}

// One Timer serves configuration after configuration: it measures into
// the metrics in use, and nothing before Use.
func TestTimerFollowsTheConfiguration(t *testing.T) {
	ctx := context.Background()
	tm := metrics.NewTimer(memstore.New())
	_, _ = tm.Get(ctx, "x") // no metrics yet: nothing to count into
	var regs []*prometheus.Registry
	for range 2 {
		reg := prometheus.NewPedanticRegistry()
		m, err := metrics.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		tm.Use(m)
		_, _ = tm.Get(ctx, "x")
		regs = append(regs, reg)
	}
	for i, reg := range regs {
		var calls uint64
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "gatehouse_store_call_seconds" {
				for _, m := range f.GetMetric() {
					calls += m.GetHistogram().GetSampleCount()
				}
			}
		}
		if calls != 1 {
			t.Fatalf("registry %d counted %d store calls, want the one made while it was in use", i, calls)
		}
	}
}
