package mail

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

var activationData = map[string]any{"link": "https://auth.acme.example/activate?t=1", "username": "alice"}

// TestRetriesUntilTheServerComesUp: the server is down, attempts fail
// with growing back-off; once it is up the message arrives, once.
func TestRetriesUntilTheServerComesUp(t *testing.T) {
	port := freePort(t)
	e := newEnv(t, Config{SMTP: &SMTP{Addr: "127.0.0.1:" + strconv.Itoa(port), Security: SecurityNone}, Backoff: time.Second})
	e.send(t, "alice@example.com", Activation, activationData)
	ctx := context.Background()
	e.m.deliverDue(ctx)
	e.m.deliverDue(ctx) // not due yet: no second attempt
	if f := e.m.Stats.Failed.Load(); f != 1 {
		t.Fatalf("failed %d after the first pass, want 1", f)
	}
	e.clock.Advance(time.Second)
	e.m.deliverDue(ctx)
	e.clock.Advance(time.Second) // the back-off doubled: still waiting
	e.m.deliverDue(ctx)
	if f := e.m.Stats.Failed.Load(); f != 2 {
		t.Fatalf("failed %d, want 2 (back-off 1s, then 2s)", f)
	}
	srv := startSMTPD(t, smtpdOptions{port: port})
	e.clock.Advance(time.Second)
	e.m.deliverDue(ctx)
	for range 3 {
		e.clock.Advance(time.Hour)
		e.m.deliverDue(ctx)
	}
	if got := srv.received(); len(got) != 1 {
		t.Fatalf("received %d messages, want exactly 1", len(got))
	}
	if e.queued(t) != 0 || e.m.Stats.Delivered.Load() != 1 || e.m.Stats.GivenUp.Load() != 0 {
		t.Fatalf("queued %d delivered %d given up %d", e.queued(t), e.m.Stats.Delivered.Load(), e.m.Stats.GivenUp.Load())
	}
}

// TestGivesUpAfterAttempts: an error log line, an audit event (WARN),
// and the message (with its link) deleted.
func TestGivesUpAfterAttempts(t *testing.T) {
	e := newEnv(t, Config{SMTP: &SMTP{Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), Security: SecurityNone},
		Attempts: 3, Backoff: time.Second})
	e.send(t, "alice@example.com", PasswordReset, map[string]any{"link": "https://auth.acme.example/reset?t=secret"})
	ctx := context.Background()
	for range 10 {
		e.m.deliverDue(ctx)
		e.clock.Advance(time.Minute)
	}
	if e.m.Stats.Failed.Load() != 3 || e.m.Stats.GivenUp.Load() != 1 {
		t.Fatalf("failed %d given up %d, want 3 and 1", e.m.Stats.Failed.Load(), e.m.Stats.GivenUp.Load())
	}
	logged := e.logs.lines("delivery given up")
	if len(logged) != 1 || logged[0]["level"] != "ERROR" || logged[0]["to"] != "alice@example.com" || logged[0]["attempts"] != 3.0 {
		t.Fatalf("log %v", logged)
	}
	if strings.Contains(e.logs.String(), "secret") {
		t.Error("the link was logged")
	}
	ev := e.audit.lines("security event")
	if len(ev) != 1 || ev[0]["event"] != "mail_given_up" || ev[0]["level"] != "WARN" || ev[0]["target"] != "alice@example.com" ||
		!strings.HasPrefix(ev[0]["reason"].(string), "password_reset: connecting to") {
		t.Fatalf("audit %v", ev)
	}
	if e.queued(t) != 0 || strings.Contains(dumpStore(t, e.st), "secret") {
		t.Fatal("the given-up message is still in the store")
	}
}

// TestCrashBeforeDelivery: a process queues a message and is killed
// (SIGKILL) before any delivery; after the restart it is delivered.
func TestCrashBeforeDelivery(t *testing.T) {
	if os.Getenv("GATEHOUSE_MAIL_CRASH_DB") != "" {
		t.Skip("the crashing child runs TestCrashChild")
	}
	db := filepath.Join(t.TempDir(), "gatehouse.db")
	srv := startSMTPD(t, smtpdOptions{})
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GATEHOUSE_MAIL_CRASH_DB="+db, "GATEHOUSE_MAIL_CRASH_SMTP="+srv.addr)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}
	if len(srv.received()) != 0 {
		t.Fatal("the child delivered before it was killed")
	}
	c := &clock{now: time.Now()}
	e := newEnv(t, Config{Store: openStore(t, db, c), SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	if e.queued(t) != 1 {
		t.Fatalf("%d messages queued after the crash, want 1", e.queued(t))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.m.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	got := srv.received()
	if len(got) != 1 || got[0].RcptTos[0] != "crash@example.com" {
		t.Fatalf("received %+v after the restart", got)
	}
}

// TestCrashChild is the process TestCrashBeforeDelivery kills.
func TestCrashChild(t *testing.T) {
	db := os.Getenv("GATEHOUSE_MAIL_CRASH_DB")
	if db == "" {
		t.Skip("run by TestCrashBeforeDelivery")
	}
	c := &clock{now: time.Now()}
	e := newEnv(t, Config{Store: openStore(t, db, c), SMTP: &SMTP{Addr: os.Getenv("GATEHOUSE_MAIL_CRASH_SMTP"), Security: SecurityNone}})
	e.send(t, "crash@example.com", Activation, activationData)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestWorkerDiesWhileSending: a worker that claimed a message and died
// leaves it to another once the lease runs out, not before.
func TestWorkerDiesWhileSending(t *testing.T) {
	srv := startSMTPD(t, smtpdOptions{})
	a := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	a.send(t, "alice@example.com", Activation, activationData)
	ids, _ := a.st.SetMembers(context.Background(), setQueue)
	if _, ok := a.m.claim(context.Background(), ids[0]); !ok {
		t.Fatal("could not claim")
	}
	// a dies here. b shares its store and clock.
	b := newEnv(t, Config{Store: a.st, Now: a.clock.Now, SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	b.m.deliverDue(context.Background())
	if len(srv.received()) != 0 {
		t.Fatal("delivered while another worker held the lease")
	}
	a.clock.Advance(b.m.lease)
	b.m.deliverDue(context.Background())
	if len(srv.received()) != 1 {
		t.Fatal("not delivered after the lease ran out")
	}
}

// TestInstancesDeliverOnce: workers of several instances on one store
// race for the same messages; each is delivered once.
func TestInstancesDeliverOnce(t *testing.T) {
	srv := startSMTPD(t, smtpdOptions{})
	first := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	envs := []*env{first}
	for range 2 {
		envs = append(envs, newEnv(t, Config{Store: first.st, Now: first.clock.Now, SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}}))
	}
	for range 5 {
		first.send(t, "alice@example.com", RegistrationWelcome, nil)
	}
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Go(func() { e.m.deliverDue(context.Background()) })
	}
	wg.Wait()
	if n := len(srv.received()); n != 5 {
		t.Fatalf("received %d messages, want 5", n)
	}
}

// TestQueuedMessagesExpire: a message never delivered does not stay in
// the store past its TTL.
func TestQueuedMessagesExpire(t *testing.T) {
	e := newEnv(t, Config{SMTP: &SMTP{Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), Security: SecurityNone}, TTL: time.Hour})
	e.send(t, "alice@example.com", Activation, activationData)
	ids, _ := e.st.SetMembers(context.Background(), setQueue)
	e.clock.Advance(time.Hour + time.Second)
	if _, err := e.st.Get(context.Background(), keyMessage+ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the message is still stored after its TTL: %v", err)
	}
	e.m.deliverDue(context.Background())
	if e.queued(t) != 0 || e.m.Stats.Failed.Load() != 0 {
		t.Fatalf("queued %d failed %d: the expired message should just leave the index", e.queued(t), e.m.Stats.Failed.Load())
	}
}

// TestRunWakesOnSend: Run delivers a new message at once, and stops
// with its context.
func TestRunWakesOnSend(t *testing.T) {
	srv := startSMTPD(t, smtpdOptions{})
	e := newEnv(t, Config{SMTP: &SMTP{Addr: srv.addr, Security: SecurityNone}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.m.Run(ctx); close(done) }()
	time.Sleep(50 * time.Millisecond) // Run is waiting now
	start := time.Now()
	e.send(t, "alice@example.com", RegistrationWelcome, nil)
	for len(srv.received()) == 0 && time.Since(start) < 5*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("delivered after %v: Send did not wake the worker", el)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestUnreadableRecordDropped: a record that does not decode is dropped
// with an error line, not retried every second.
func TestUnreadableRecordDropped(t *testing.T) {
	e := newEnv(t, Config{Outbox: t.TempDir()})
	ctx := context.Background()
	if err := e.st.Apply(ctx, store.Put(keyMessage+"x", []byte("{not json"), time.Hour), store.SetAdd(setQueue, "x")); err != nil {
		t.Fatal(err)
	}
	e.m.deliverDue(ctx)
	if e.queued(t) != 0 || len(e.logs.lines("cannot be read")) != 1 {
		t.Fatalf("queued %d, log %s", e.queued(t), e.logs.String())
	}
	if _, err := e.st.Get(ctx, keyMessage+"x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the record is still stored: %v", err)
	}
}
