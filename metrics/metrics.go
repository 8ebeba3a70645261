// Package metrics is Gatehouse's Prometheus metrics, registered in the
// registry of the running Caddy configuration (served by Caddy's admin
// /metrics and its metrics handler): sign-ins by module and result and
// every other security event (read from the audit log's counts), token
// grants by type, gate decisions by gate and result, logout deliveries,
// store calls (latency and errors) and the password-hashing queue.
//
// A nil *Set records nothing, so code paths need no check.
package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/sets"
	"github.com/gatehouse-idp/gatehouse/users"
)

const namespace = "gatehouse"

// Sources are what the metrics read when scraped.
type Sources struct {
	// Audit counts security events (sign-ins, step-ups, bans…).
	Audit *audit.Log
	// Logout's queue counts back-channel deliveries.
	Logout *logout.Queue
	// Hasher bounds password checks (running, waiting, capacity).
	Hasher *users.Hasher
	// SETs counts Security Event Tokens (nil: none configured).
	SETs *sets.Service
}

// Set holds the metrics of one configuration.
type Set struct {
	reg      prometheus.Registerer
	grants   *prometheus.CounterVec
	gate     *prometheus.CounterVec
	storeDur *prometheus.HistogramVec
	storeErr *prometheus.CounterVec
}

// New registers Gatehouse's own counters in reg; Watch adds what is
// read from the other parts when scraped.
func New(reg prometheus.Registerer) (*Set, error) {
	s := &Set{
		reg: reg,
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "token_grants_total",
			Help: "Tokens issued, by grant type (authorization_code, refresh_token, client_credentials, device_code, implicit)."},
			[]string{"grant_type"}),
		gate: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "gate_decisions_total",
			Help: "Requests a gate decided, by gate (its sites and levels) and result (pass, login, step_up, forbidden, bypass, bad_path, unknown_site, unavailable)."},
			[]string{"gate", "result"}),
		storeDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "store_call_seconds",
			Help:    "Time of store calls, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}},
			[]string{"op"}),
		storeErr: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "store_errors_total",
			Help: "Store calls that failed (not counting records not found, already there or changed by another writer, nor a caller refusing an update), by operation."},
			[]string{"op"}),
	}
	return s, s.register(s.grants, s.gate, s.storeDur, s.storeErr)
}

func (s *Set) register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := s.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Watch registers the metrics read from src when scraped.
func (s *Set) Watch(src Sources) error {
	cs := []prometheus.Collector{&events{src.Audit}}
	if q := src.Logout; q != nil {
		cs = append(cs, byResult("logout_deliveries_total",
			"Back-channel logout deliveries by this instance: delivered, failed (to be retried) and given up.",
			map[string]func() int64{"delivered": q.Stats.Delivered.Load, "failed": q.Stats.Failed.Load, "given_up": q.Stats.GivenUp.Load})...)
	}
	if q := src.SETs; q != nil {
		cs = append(cs, byResult("set_deliveries_total",
			"Security Event Tokens on this instance: queued, delivered, failed (to be retried), given up, and dropped from a full queue.",
			map[string]func() int64{"queued": q.Stats.Queued.Load, "delivered": q.Stats.Delivered.Load, "failed": q.Stats.Failed.Load,
				"given_up": q.Stats.GivenUp.Load, "dropped": q.Stats.Dropped.Load})...)
	}
	if h := src.Hasher; h != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "password_checks_running",
				Help: "Password hashes being computed now."}, func() float64 { return float64(h.InUse()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "password_checks_waiting",
				Help: "Password checks waiting for a slot (beyond the wait they are refused as busy)."}, func() float64 { return float64(h.Waiting()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "password_checks_capacity",
				Help: "Password hashes that may run at once."}, func() float64 { return float64(h.Concurrency()) }))
	}
	return s.register(cs...)
}

// byResult is one counter, labelled result, per count.
func byResult(name, help string, counts map[string]func() int64) []prometheus.Collector {
	var cs []prometheus.Collector
	for result, n := range counts {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help,
			ConstLabels: prometheus.Labels{"result": result}}, func() float64 { return float64(n()) }))
	}
	return cs
}

// Grant counts tokens issued with grantType.
func (s *Set) Grant(grantType string) {
	if s != nil {
		s.grants.WithLabelValues(grantType).Inc()
	}
}

// Gate returns the observer of one gate's decisions (gate.Config.Observe),
// labelled name(): asked until it answers (a gate learns its sites
// after it is built), then kept. nil without metrics.
func (s *Set) Gate(name func() string) func(result string) {
	if s == nil {
		return nil
	}
	var known atomic.Pointer[string]
	var counters sync.Map // result → prometheus.Counter, once the name is known
	return func(result string) {
		if c, ok := counters.Load(result); ok {
			c.(prometheus.Counter).Inc()
			return
		}
		l := known.Load()
		if l == nil {
			n := name()
			if n != "" {
				known.Store(&n)
			}
			l = &n
		}
		c := s.gate.WithLabelValues(*l, result)
		if *l != "" {
			counters.Store(result, c)
		}
		c.Inc()
	}
}

// events exposes the audit log's counts.
type events struct{ log *audit.Log }

var (
	eventsDesc = prometheus.NewDesc(namespace+"_security_events_total",
		"Security events recorded in the audit trail, by event and module (a sign-in counts once for each module passed).",
		[]string{"event", "module"}, nil)
	loginsDesc = prometheus.NewDesc(namespace+"_logins_total",
		"Sign-ins by module and result: succeeded (a new session), step_up (more passed in a session) or failed.",
		[]string{"module", "result"}, nil)
)

func (e *events) Describe(ch chan<- *prometheus.Desc) { ch <- eventsDesc; ch <- loginsDesc }

func (e *events) Collect(ch chan<- prometheus.Metric) {
	for k, n := range e.log.ByModule() {
		ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(n), k.Event, k.Module)
		result := ""
		switch k.Event {
		case audit.LoginSucceeded:
			result = "succeeded"
		case audit.StepUp:
			result = "step_up"
		case audit.LoginFailed:
			result = "failed"
		}
		if result != "" {
			ch <- prometheus.MustNewConstMetric(loginsDesc, prometheus.CounterValue, float64(n), k.Module, result)
		}
	}
}
