package logout

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
)

// flaky is a store that fails every call while down is set (the store
// went away).
type flaky struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("store unreachable")

func (f *flaky) Get(ctx context.Context, k string) ([]byte, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Get(ctx, k)
}
func (f *flaky) Apply(ctx context.Context, ops ...store.Op) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.Apply(ctx, ops...)
}
func (f *flaky) SetMembers(ctx context.Context, s string) ([]string, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.SetMembers(ctx, s)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// party records what it heard and can be made to fail.
type party struct {
	mu    sync.Mutex
	ended []Ended
	fail  atomic.Bool
	uri   string
}

func (p *party) SessionEnded(ctx context.Context, e Ended, q *Queue) error {
	if p.fail.Load() {
		return errors.New("party failed")
	}
	p.mu.Lock()
	p.ended = append(p.ended, e)
	p.mu.Unlock()
	if p.uri != "" {
		for _, c := range e.Clients {
			if err := q.Enqueue(ctx, Notice{URI: p.uri, Audience: c, Subject: e.Subject, SID: e.SID}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *party) got() []Ended {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ended)
}

// signer signs nothing: it returns the claims as JSON, for inspection.
type signer struct{}

func (signer) SignClaims(typ string, claims any) (string, error) {
	b, err := json.Marshal(claims)
	return typ + "." + base64.RawURLEncoding.EncodeToString(b), err
}

type env struct {
	st       *flaky
	clock    *clock
	sessions *session.Manager
	svc      *Service
	party    *party
	trail    *bytes.Buffer
}

func newEnv(t *testing.T, receiver string) *env {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	ms := memstore.New()
	ms.Now = c.Now
	t.Cleanup(func() { ms.Close() })
	st := &flaky{Store: ms}
	sessions, err := session.NewManager(context.Background(), st, session.Options{Now: c.Now, Idle: time.Hour, Lifetime: 10 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	trail := &bytes.Buffer{}
	q := NewQueue(QueueConfig{Store: st, Issuer: "https://idp.example", Signer: signer{}, Now: c.Now, Backoff: time.Second, Attempts: 3,
		Audit: audit.New(slog.New(slog.NewJSONHandler(&lockedWriter{w: trail}, nil)))})
	svc, err := New(Config{Store: st, Sessions: sessions, Queue: q, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := &party{uri: receiver}
	svc.Subscribe(p)
	return &env{st: st, clock: c, sessions: sessions, svc: svc, party: p, trail: trail}
}

// lockedWriter serialises writes to the audit buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *env) session(t *testing.T, sub string, clients ...string) *session.Session {
	t.Helper()
	s := e.sessions.New(sub)
	for _, c := range clients {
		s.AddClient(c)
	}
	if err := e.sessions.Save(context.Background(), nil, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEndTellsEveryPartyOnce(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	s := e.session(t, "alice", "wiki", "mail")
	if err := e.svc.End(ctx, s.ID, ByClient); err != nil {
		t.Fatal(err)
	}
	got := e.party.got()
	if len(got) != 1 || got[0].SID != s.ID || got[0].Subject != "alice" || got[0].Reason != ByClient ||
		!slices.Equal(got[0].Clients, []string{"wiki", "mail"}) {
		t.Fatalf("party heard %+v", got)
	}
	if _, err := e.sessions.Get(ctx, s.ID); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("session still live: %v", err)
	}
	if jobs, _ := e.st.SetMembers(ctx, setJobs); len(jobs) != 0 {
		t.Fatalf("jobs left: %v", jobs)
	}
	// Ending it again, or a session that never was, is a no-op.
	if err := e.svc.End(ctx, s.ID, ByClient); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.End(ctx, "never", ByClient); err != nil {
		t.Fatal(err)
	}
	if len(e.party.got()) != 1 {
		t.Fatalf("party told again: %+v", e.party.got())
	}
}

// A logout while the store is down says so, and changes nothing; once
// the store is back, the same call ends the session.
func TestEndWhileTheStoreIsDown(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	s := e.session(t, "alice")
	e.st.down.Store(true)
	if err := e.svc.End(ctx, s.ID, ByClient); err == nil {
		t.Fatal("End reported success with the store down")
	}
	e.st.down.Store(false)
	if _, err := e.sessions.Get(ctx, s.ID); err != nil {
		t.Fatalf("a failed End changed the session: %v", err)
	}
	if len(e.party.got()) != 0 {
		t.Fatal("party told of a logout that did not happen")
	}
	if err := e.svc.End(ctx, s.ID, ByClient); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sessions.Get(ctx, s.ID); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("after retry: %v", err)
	}
}

// A job interrupted half-way (a party failed after the session was
// removed) is reported as failed, and finished by the sweep.
func TestInterruptedJobIsFinished(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	s := e.session(t, "alice", "wiki")
	e.party.fail.Store(true)
	if err := e.svc.End(ctx, s.ID, ByGate); err == nil {
		t.Fatal("End reported success though a party failed")
	}
	if _, err := e.sessions.Get(ctx, s.ID); !errors.Is(err, session.ErrNoSession) {
		t.Fatal("the session's cookie still works after a half-done logout")
	}
	e.party.fail.Store(false)
	e.svc.Sweep(ctx) // within the grace time: left to the request
	if len(e.party.got()) != 0 {
		t.Fatal("sweep took over a fresh job")
	}
	e.clock.Advance(jobGrace + time.Second)
	e.svc.Sweep(ctx)
	got := e.party.got()
	if len(got) != 1 || got[0].SID != s.ID || got[0].Reason != ByGate || !slices.Equal(got[0].Clients, []string{"wiki"}) {
		t.Fatalf("sweep told %+v", got)
	}
	// A retried End of the same session runs nothing more.
	if err := e.svc.End(ctx, s.ID, ByGate); err != nil || len(e.party.got()) != 1 {
		t.Fatalf("End after sweep: %v %+v", err, e.party.got())
	}
}

func TestExpiredSessionsAreEnded(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	e.svc.Sweep(ctx) // starts the expiry index
	old := e.session(t, "alice", "wiki")
	e.clock.Advance(30 * time.Minute)
	live := e.session(t, "bob")
	e.clock.Advance(40 * time.Minute) // old: idle 70m > 1h
	e.svc.Sweep(ctx)
	got := e.party.got()
	if len(got) != 1 || got[0].SID != old.ID || got[0].Reason != Expired || !slices.Equal(got[0].Clients, []string{"wiki"}) {
		t.Fatalf("expiry told %+v", got)
	}
	if _, err := e.sessions.Get(ctx, live.ID); err != nil {
		t.Fatalf("live session ended: %v", err)
	}
	e.svc.Sweep(ctx)
	if len(e.party.got()) != 1 {
		t.Fatal("expired session ended twice")
	}
}

func TestEndAll(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	a1, a2 := e.session(t, "alice"), e.session(t, "alice")
	b := e.session(t, "bob")
	n, err := e.svc.EndAll(ctx, "alice", Password)
	if err != nil || n != 2 {
		t.Fatalf("EndAll = %d, %v", n, err)
	}
	var sids []string
	var all bool
	for _, x := range e.party.got() {
		if x.SID == "" {
			all = x.Subject == "alice" && x.Reason == Password
		} else {
			sids = append(sids, x.SID)
		}
	}
	slices.Sort(sids)
	want := []string{a1.ID, a2.ID}
	slices.Sort(want)
	if !slices.Equal(sids, want) || !all {
		t.Fatalf("party heard %+v", e.party.got())
	}
	if _, err := e.sessions.Get(ctx, b.ID); err != nil {
		t.Fatal("another user's session ended")
	}
}

// receiver is a back-channel endpoint that can be down.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
	down   atomic.Bool
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rc.mu.Lock()
		rc.tokens = append(rc.tokens, r.PostFormValue("logout_token"))
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []map[string]any
	for _, tok := range rc.tokens {
		typ, body, _ := strings.Cut(tok, ".")
		b, _ := base64.RawURLEncoding.DecodeString(body)
		c := map[string]any{"typ": typ}
		json.Unmarshal(b, &c)
		out = append(out, c)
	}
	return out
}

func TestQueueDeliversRetriesAndGivesUp(t *testing.T) {
	rc := newReceiver(t)
	e := newEnv(t, rc.srv.URL+"/bcl")
	ctx := context.Background()
	q := e.svc.Queue()
	s := e.session(t, "alice", "wiki")
	if err := e.svc.End(ctx, s.ID, ByClient); err != nil {
		t.Fatal(err)
	}
	// Queueing the same notice again (a job run twice) sends it once.
	if err := q.Enqueue(ctx, Notice{URI: rc.srv.URL + "/bcl", Audience: "wiki", Subject: "alice", SID: s.ID}); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Len(ctx); n != 1 {
		t.Fatalf("queue length %d, want 1", n)
	}
	q.deliverDue(ctx)
	got := rc.got()
	if len(got) != 1 || got[0]["typ"] != TokenType || got[0]["aud"] != "wiki" || got[0]["sub"] != "alice" ||
		got[0]["sid"] != s.ID || got[0]["iss"] != "https://idp.example" || got[0]["jti"] == "" || got[0]["nonce"] != nil {
		t.Fatalf("delivered %+v", got)
	}
	if ev, _ := got[0]["events"].(map[string]any); ev[BackchannelEvent] == nil {
		t.Fatalf("no back-channel event: %+v", got[0])
	}
	if n, _ := q.Len(ctx); n != 0 || q.Stats.Delivered.Load() != 1 {
		t.Fatalf("after delivery: queue %d, stats %d", n, q.Stats.Delivered.Load())
	}
	// A receiver that is down is retried with back-off, then given up.
	rc.down.Store(true)
	q.Enqueue(ctx, Notice{URI: rc.srv.URL + "/bcl", Audience: "mail", Subject: "bob", SID: "s2"})
	q.deliverDue(ctx)
	q.deliverDue(ctx) // not due yet: no second attempt
	if f := q.Stats.Failed.Load(); f != 1 {
		t.Fatalf("failed attempts %d, want 1", f)
	}
	for range 3 {
		e.clock.Advance(10 * time.Second)
		q.deliverDue(ctx)
	}
	if q.Stats.GivenUp.Load() != 1 {
		t.Fatalf("given up %d", q.Stats.GivenUp.Load())
	}
	if n, _ := q.Len(ctx); n != 0 {
		t.Fatalf("given-up delivery still queued: %d", n)
	}
	if !strings.Contains(e.trail.String(), `"event":"logout_delivery_given_up"`) || !strings.Contains(e.trail.String(), `"client":"mail"`) {
		t.Fatalf("no audit line for the given-up delivery:\n%s", e.trail)
	}
}

// A user's sessions are capped: the oldest end, with the usual fan-out.
func TestLimitSessions(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	e.svc.cfg.MaxSessionsPerUser = 3
	var ids []string
	for range 5 {
		e.clock.Advance(time.Minute)
		ids = append(ids, e.session(t, "alice").ID)
	}
	other := e.session(t, "bob")
	if err := e.svc.LimitSessions(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		_, err := e.sessions.Get(ctx, id)
		if live := err == nil; live != (i >= 2) {
			t.Errorf("session %d live=%v", i, live)
		}
	}
	got := e.party.got()
	if len(got) != 2 || got[0].Reason != TooMany {
		t.Fatalf("party heard %+v", got)
	}
	if _, err := e.sessions.Get(ctx, other.ID); err != nil {
		t.Fatal("another user's session ended")
	}
}
