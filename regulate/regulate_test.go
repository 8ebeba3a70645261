package regulate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newLimiter(t *testing.T) (*Limiter, *clock) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	st := memstore.New()
	st.Now = c.Now
	t.Cleanup(func() { st.Close() })
	l, err := New(st, nil, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

// try is one checked attempt that fails: it reports whether it was
// checked.
func try(t *testing.T, l *Limiter, keys ...Key) (*Blocked, []Ban) {
	t.Helper()
	b, err := l.Begin(context.Background(), keys...)
	if err != nil {
		t.Fatal(err)
	}
	if b != nil {
		return b, nil
	}
	bans, err := l.Fail(context.Background(), keys...)
	if err != nil {
		t.Fatal(err)
	}
	return nil, bans
}

func TestUserIsSlowedThenBanned(t *testing.T) {
	l, c := newLimiter(t)
	ctx := context.Background()
	alice := User("sub-alice")
	// Two mistakes are free.
	for i := range 2 {
		if b, _ := try(t, l, alice); b != nil {
			t.Fatalf("failure %d blocked: %+v", i+1, b)
		}
	}
	// The third is checked, and the next must wait.
	if b, _ := try(t, l, alice); b != nil {
		t.Fatalf("third: %+v", b)
	}
	b, _ := try(t, l, alice)
	if b == nil || b.Banned || b.RetryAfter != 2*time.Second {
		t.Fatalf("right after the third: %+v, want a 2s delay", b)
	}
	c.Advance(2 * time.Second)
	if b, _ := try(t, l, alice); b != nil {
		t.Fatalf("fourth after the delay: %+v", b)
	}
	if b, _ := try(t, l, alice); b == nil || b.RetryAfter != 4*time.Second {
		t.Fatalf("delay doubles: %+v", b)
	}
	c.Advance(4 * time.Second)
	b, bans := try(t, l, alice)
	if b != nil || len(bans) != 1 || bans[0].Key != alice || !bans[0].Until.Equal(c.Now().Add(5*time.Minute)) {
		t.Fatalf("fifth failure: blocked %+v bans %+v, want a 5 minute ban", b, bans)
	}
	// During the ban nothing is checked — a right password neither.
	if b, err := l.Begin(ctx, alice); err != nil || b == nil || !b.Banned || b.RetryAfter != 5*time.Minute {
		t.Fatalf("during the ban: %+v %v", b, err)
	}
	list, _ := l.Bans(ctx)
	if len(list) != 1 || list[0].Key != alice {
		t.Fatalf("bans %+v", list)
	}
	// After it, a second round of failures bans for twice as long.
	c.Advance(5 * time.Minute)
	if b, err := l.Begin(ctx, alice); err != nil || b != nil {
		t.Fatalf("after the ban: %+v %v", b, err)
	}
	l.Fail(ctx, alice)
	var last []Ban
	for range 10 {
		c.Advance(time.Minute)
		if b, bans := try(t, l, alice); b == nil && len(bans) > 0 {
			last = bans
			break
		}
	}
	if len(last) != 1 || last[0].Bans != 2 || !last[0].Until.Equal(c.Now().Add(10*time.Minute)) {
		t.Fatalf("second ban %+v, want 10 minutes", last)
	}
	// A day without bans forgets them.
	c.Advance(25 * time.Hour)
	for range 5 {
		c.Advance(time.Minute)
		if _, bans := try(t, l, alice); len(bans) > 0 && bans[0].Bans != 1 {
			t.Fatalf("ban count not forgotten: %+v", bans)
		}
	}
	if list, _ := l.Bans(ctx); len(list) != 1 {
		t.Fatalf("bans %+v", list)
	}
}

func TestSucceedForgetsAnAccountsFailuresOnly(t *testing.T) {
	l, _ := newLimiter(t)
	ctx := context.Background()
	alice, ip := User("alice"), IP("192.0.2.1")
	for range 2 {
		try(t, l, alice, ip)
	}
	if b, _ := l.Begin(ctx, alice, ip); b != nil {
		t.Fatal(b)
	}
	l.Succeed(ctx, alice, ip)
	// The account starts over; the address keeps its two failures.
	for range 2 {
		if b, _ := try(t, l, alice); b != nil {
			t.Fatalf("account not forgiven: %+v", b)
		}
	}
}

// Attempts sent at once cannot slip past the limit: each counts before
// it is checked.
func TestConcurrentAttemptsCountEachOne(t *testing.T) {
	l, _ := newLimiter(t)
	var checked atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, err := l.Begin(context.Background(), User("alice")); err == nil && b == nil {
				checked.Add(1)
				l.Fail(context.Background(), User("alice"))
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > 3 {
		t.Fatalf("%d of 30 concurrent attempts were checked, want at most 3 (2 free, then a delay)", n)
	}
}

// One password sprayed over many accounts from one address bans the
// address.
func TestSprayBansTheAddress(t *testing.T) {
	l, c := newLimiter(t)
	ip := IP("198.51.100.7")
	banned := -1
	for i := range 50 {
		b, bans := try(t, l, UnknownName(string(rune('a'+i%26))+"-user"), ip)
		for b != nil && !b.Banned {
			c.Advance(b.RetryAfter)
			b, bans = try(t, l, UnknownName(string(rune('a'+i%26))+"-user"), ip)
		}
		if b != nil && b.Banned {
			banned = i
			break
		}
		if len(bans) > 0 && bans[0].Key == ip {
			banned = i + 1
			break
		}
	}
	if banned != 20 {
		t.Fatalf("address banned after %d accounts, want 20", banned)
	}
	if b, _ := l.Begin(context.Background(), UnknownName("z"), ip); b == nil || !b.Banned || b.Key != ip {
		t.Fatalf("address not banned: %+v", b)
	}
}

func TestAdminBansAndLift(t *testing.T) {
	l, c := newLimiter(t)
	ctx := context.Background()
	ip := IP("203.0.113.9")
	if _, err := l.BanKey(ctx, ip, time.Hour); err != nil {
		t.Fatal(err)
	}
	if b, _ := l.Begin(ctx, ip); b == nil || !b.Banned {
		t.Fatal("manual ban not in force")
	}
	list, _ := l.Bans(ctx)
	if len(list) != 1 || !list[0].Manual || list[0].Key != ip {
		t.Fatalf("bans %+v", list)
	}
	if was, err := l.Lift(ctx, ip); err != nil || !was {
		t.Fatalf("lift: %v %v", was, err)
	}
	if b, _ := l.Begin(ctx, ip); b != nil {
		t.Fatalf("after lift: %+v", b)
	}
	if list, _ := l.Bans(ctx); len(list) != 0 {
		t.Fatalf("bans after lift %+v", list)
	}
	// Expired bans drop out of the list.
	l.BanKey(ctx, User("x"), time.Minute)
	c.Advance(2 * time.Minute)
	if list, _ := l.Bans(ctx); len(list) != 0 {
		t.Fatalf("expired ban listed: %+v", list)
	}
	if _, err := l.BanKey(ctx, Key{"other", "x"}, time.Hour); err == nil {
		t.Fatal("unknown kind banned")
	}
}

func TestKeys(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1": "ip:192.0.2.1", "::ffff:192.0.2.1": "ip:192.0.2.1", "2001:db8:1:2:3:4:5:6": "ip:2001:db8:1:2::/64",
		"[2001:db8:1:2::9]": "ip:2001:db8:1:2::/64",
	} {
		if got := IP(in).String(); got != want {
			t.Errorf("IP(%q) = %q, want %q", in, got, want)
		}
	}
	if UnknownName("Alice ") != UnknownName("alice") {
		t.Error("unknown names not folded")
	}
	for _, s := range []string{"ip:192.0.2.1", "user:abc", "client:wiki"} {
		if k, err := ParseKey(s); err != nil || k.String() != s {
			t.Errorf("ParseKey(%q) = %v, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "ip:", "nope:x", "user"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
	if err := (Policy{KindUser: {MaxRetries: 2, FreeRetries: 2, FindTime: time.Minute, BanTime: time.Minute, MaxBanTime: time.Minute}}).Validate(); err == nil {
		t.Error("free_retries >= max_retries accepted")
	}
}

// Check and Count: nothing is written for an attempt that is not a
// failure; failures counted after the fact slow and then ban the key
// just as Begin and Fail do.
func TestCheckThenCountFailures(t *testing.T) {
	l, c := newLimiter(t)
	ctx := context.Background()
	k := Client("svc")
	rule := DefaultPolicy()[KindClient]
	for range 1000 {
		if b, err := l.Check(ctx, k); b != nil || err != nil {
			t.Fatalf("checks alone blocked: %+v %v", b, err)
		}
	}
	var banned []Ban
	for i := 0; len(banned) == 0; i++ {
		if i > rule.MaxRetries {
			t.Fatalf("no ban after %d failures", i)
		}
		if b, _ := l.Check(ctx, k); b != nil {
			if b.Banned {
				t.Fatalf("banned before Count said so: %+v", b)
			}
			c.Advance(b.RetryAfter) // wait out the delay, as a patient guesser would
		}
		var err error
		if banned, err = l.Count(ctx, k); err != nil {
			t.Fatal(err)
		}
		if i >= rule.FreeRetries && len(banned) == 0 {
			if b, _ := l.Check(ctx, k); b == nil || b.Banned {
				t.Fatalf("failure %d: no delay before the next attempt (%+v)", i+1, b)
			}
		}
	}
	if b, _ := l.Check(ctx, k); b == nil || !b.Banned {
		t.Fatalf("after the ban: %+v", b)
	}
	c.Advance(rule.BanTime + time.Second)
	if b, _ := l.Check(ctx, k); b != nil {
		t.Fatalf("after the ban ended: %+v", b)
	}
}
