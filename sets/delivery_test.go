package sets

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
)

func loginEvent(sid string) audit.Event {
	return audit.Event{Event: audit.LoginSucceeded, User: "alice", Subject: alice.Subject, SID: sid, AMR: []string{"pwd"}}
}

// TestDeliver: the receiver verifies each SET against the JWKS (typ,
// iss, aud, signature) and takes it with 202; every jti is new; the
// queue is empty afterwards.
func TestDeliver(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr")
	rs := []Receiver{{URL: rc.srv.URL + "/sets", Audience: "hr", PrivateNetworks: true, Authorization: "Bearer s3cret"}}
	e := newEnv(t, newMemStore(), k, rs, nil)
	ctx := context.Background()
	for _, sid := range []string{"a", "b", "c"} {
		e.log.Record(ctx, loginEvent(sid))
	}
	e.log.Record(ctx, audit.Event{Event: audit.SessionEnded, Subject: alice.Subject, SID: "a", Reason: "user_logout"})
	e.svc.deliverDue(ctx)
	got := rc.sets()
	if len(got) != 4 || len(rc.jtis) != 4 {
		t.Fatalf("received %d SETs with %d jtis, want 4", len(got), len(rc.jtis))
	}
	for _, s := range got {
		if s.Auth != "Bearer s3cret" {
			t.Fatalf("authorization %q", s.Auth)
		}
	}
	if n, _ := e.svc.Len(ctx); n != 0 || e.svc.Stats.Delivered.Load() != 4 || e.svc.Stats.Queued.Load() != 4 {
		t.Fatalf("queue %d, stats %+v", n, &e.svc.Stats)
	}
	// Another pass sends nothing again.
	e.svc.deliverDue(ctx)
	if len(rc.sets()) != 4 {
		t.Fatal("a delivered SET was sent again")
	}
}

// TestRetry: a 503 is tried again after the back-off (not before), with
// the same jti; a 200 is not taken as delivered (RFC 8935 wants 202).
func TestRetry(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr", http.StatusServiceUnavailable, http.StatusOK)
	e := newEnv(t, newMemStore(), k, []Receiver{{URL: rc.srv.URL, Audience: "hr", PrivateNetworks: true}}, nil)
	ctx := context.Background()
	e.log.Record(ctx, loginEvent("a"))
	jti := e.queued(t)[0].ID
	e.svc.deliverDue(ctx)
	if q := e.queued(t); len(q) != 1 || q[0].Attempts != 1 || len(rc.sets()) != 0 {
		t.Fatalf("after a 503: %+v", q)
	}
	e.svc.deliverDue(ctx) // too early: not sent
	e.clock.Advance(2 * time.Second)
	e.svc.deliverDue(ctx) // 200: not delivered
	if q := e.queued(t); len(q) != 1 || q[0].Attempts != 2 {
		t.Fatalf("after a 200: %+v", q)
	}
	e.clock.Advance(3 * time.Second)
	e.svc.deliverDue(ctx)
	e.clock.Advance(4 * time.Second)
	e.svc.deliverDue(ctx)
	got := rc.sets()
	if len(got) != 1 || got[0].Claims["jti"] != jti || rc.posts != 3 {
		t.Fatalf("received %v after %d posts, want the one SET after 3", got, rc.posts)
	}
	if n, _ := e.svc.Len(ctx); n != 0 {
		t.Fatalf("queue %d", n)
	}
}

// TestRefused: a 400 with an RFC 8935 error gives the SET up at once,
// with an audit line naming the receiver's error (control characters
// removed); the next SET to that receiver is still sent.
func TestRefused(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr", http.StatusBadRequest)
	e := newEnv(t, newMemStore(), k, []Receiver{{URL: rc.srv.URL, Audience: "hr", PrivateNetworks: true}}, nil)
	ctx := context.Background()
	e.log.Record(ctx, loginEvent("a"))
	e.clock.Advance(time.Millisecond)
	e.log.Record(ctx, loginEvent("b"))
	e.svc.deliverDue(ctx)
	if n, _ := e.svc.Len(ctx); n != 0 || rc.posts != 2 || len(rc.sets()) != 1 || e.svc.Stats.GivenUp.Load() != 1 {
		t.Fatalf("queue %d, posts %d, received %d", n, rc.posts, len(rc.sets()))
	}
	line := e.trail.String()
	if !strings.Contains(line, `"event":"set_delivery_given_up"`) || !strings.Contains(line, "refused: invalid_audience (not for us)") ||
		!strings.Contains(line, rc.srv.URL) {
		t.Fatalf("audit trail: %s", line)
	}
}

// TestGivenUp: a receiver that keeps failing gets each SET the
// configured number of times, then it is given up with an audit line;
// no redirect is followed.
func TestGivenUp(t *testing.T) {
	k := newSigner(t)
	var elsewhere int
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere++ }))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	e := newEnv(t, newMemStore(), k, []Receiver{{URL: redirect.URL, PrivateNetworks: true}}, func(c *Config) { c.Attempts = 3 })
	ctx := context.Background()
	e.log.Record(ctx, loginEvent("a"))
	for range 3 {
		e.svc.deliverDue(ctx)
		e.clock.Advance(time.Hour)
	}
	if n, _ := e.svc.Len(ctx); n != 0 || elsewhere != 0 {
		t.Fatalf("queue %d, redirect followed %d times", n, elsewhere)
	}
	if !strings.Contains(e.trail.String(), "after 3 attempts: receiver answered 307 Temporary Redirect") {
		t.Fatalf("audit trail: %s", e.trail.String())
	}
}

// TestPublicOnly: a receiver without private_networks is reached on
// public addresses only, also when a name leads to this machine.
func TestPublicOnly(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr")
	e := newEnv(t, newMemStore(), k, []Receiver{{URL: "https://hr.example/sets", Audience: "hr"}}, nil)
	// The configuration named a public host; at delivery it is the
	// test server on 127.0.0.1 (a DNS answer that changed).
	e.svc.cfg.Receivers[0].URL = rc.srv.URL
	e.log.Record(context.Background(), loginEvent("a"))
	e.svc.deliverDue(context.Background())
	if rc.posts != 0 || e.svc.Stats.Failed.Load() != 1 {
		t.Fatalf("a loopback receiver was reached without private_networks (posts %d)", rc.posts)
	}
}

// TestQueueBound: beyond max_queued the oldest SETs are dropped, with an
// error line.
func TestQueueBound(t *testing.T) {
	k := newSigner(t)
	e := newEnv(t, newMemStore(), k, []Receiver{{URL: "http://127.0.0.1:1/down", PrivateNetworks: true}}, func(c *Config) { c.MaxQueued = 3 })
	ctx := context.Background()
	for _, sid := range []string{"1", "2", "3", "4", "5"} {
		e.log.Record(ctx, loginEvent(sid))
		e.clock.Advance(time.Millisecond)
	}
	e.svc.deliverDue(ctx)
	q := e.queued(t)
	if len(q) != 3 || e.svc.Stats.Dropped.Load() != 2 {
		t.Fatalf("queued %d, dropped %d", len(q), e.svc.Stats.Dropped.Load())
	}
	for i, d := range q {
		if want := `"id":"` + string(rune('3'+i)) + `"`; !strings.Contains(string(d.Claims), want) {
			t.Fatalf("kept %s, want the newest", d.Claims)
		}
	}
}

// TestRestart: SETs queued before a restart are delivered after it,
// from the store.
func TestRestart(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr")
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	rs := []Receiver{{URL: rc.srv.URL, Audience: "hr", PrivateNetworks: true}}
	st, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, st, k, rs, nil)
	e.log.Record(context.Background(), loginEvent("a"))
	st.Close()

	st, err = embedded.Open(path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e2 := newEnv(t, st, k, rs, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e2.svc.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(rc.sets()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := rc.sets(); len(got) != 1 || got[0].Claims["events"].(map[string]any)[CAEPSessionEstablished] == nil {
		t.Fatalf("after a restart: %v", got)
	}
}

// TestOneDelivery: instances sharing the store send each SET once, even
// when they work the queue at the same moment.
func TestOneDelivery(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr")
	st := newMemStore()
	rs := []Receiver{{URL: rc.srv.URL, Audience: "hr", PrivateNetworks: true}}
	e1 := newEnv(t, st, k, rs, nil)
	e2 := newEnv(t, st, k, rs, nil)
	e2.clock = e1.clock
	ctx := context.Background()
	for i := range 20 {
		e1.log.Record(ctx, loginEvent(string(rune('a'+i))))
	}
	var wg sync.WaitGroup
	for _, e := range []*env{e1, e2, e1, e2} {
		wg.Add(1)
		go func() { defer wg.Done(); e.svc.deliverDue(ctx) }()
	}
	wg.Wait()
	if len(rc.jtis) != 20 {
		t.Fatalf("received %d distinct SETs, want 20", len(rc.jtis))
	}
	for jti, n := range rc.jtis {
		if n != 1 {
			t.Fatalf("SET %s received %d times", jti, n)
		}
	}
}

// TestOtherInstancesReceiver: a SET for a receiver this instance does
// not know (another instance's newer configuration) is left queued for
// the instances that know it.
func TestOtherInstancesReceiver(t *testing.T) {
	k := newSigner(t)
	rc := newReceiver(t, k.jwks, "hr")
	st := newMemStore()
	newer := newEnv(t, st, k, []Receiver{{URL: rc.srv.URL, Audience: "hr", PrivateNetworks: true}}, nil)
	older := newEnv(t, st, k, []Receiver{{URL: "https://old.example/sets"}}, nil)
	ctx := context.Background()
	newer.log.Record(ctx, loginEvent("a"))
	older.svc.deliverDue(ctx)
	if n, _ := older.svc.Len(ctx); n != 1 || rc.posts != 0 {
		t.Fatalf("queue %d, posts %d", n, rc.posts)
	}
	newer.svc.deliverDue(ctx)
	if n, _ := newer.svc.Len(ctx); n != 0 || len(rc.sets()) != 1 {
		t.Fatalf("queue %d, received %d", n, len(rc.sets()))
	}
}
