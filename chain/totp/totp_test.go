package totp

import (
	"context"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
	"github.com/gatehouse-idp/gatehouse/users"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	m     *Module
	st    *embedded.Store
	clock *clock
	sub   string
}

func setup(t *testing.T, settings map[string]string) *fixture {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "t.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := users.New(st, nil)
	u, _ := dir.Create(context.Background(), users.User{Username: "alice"}, "pw")
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	m, err := New(chain.Deps{Users: dir, Store: st, Now: c.now}, settings)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m.(*Module), st: st, clock: c, sub: u.Subject}
}

func code(t *testing.T, secret string, at time.Time) string {
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	secretRE   = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)
	recoveryRE = regexp.MustCompile(`<li><code>([a-z2-7]{4}-[a-z2-7]{4})</code></li>`)
)

// enrol walks through enrolment and returns the secret and recovery codes.
func (f *fixture) enrol(t *testing.T) (string, []string) {
	t.Helper()
	ctx := context.Background()
	a := &chain.Attempt{ID: "att-1", Subject: f.sub}
	p, err := f.m.Prompt(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p.HTML), `src="data:image/png;base64,`) {
		t.Fatal("no QR code image")
	}
	m := secretRE.FindStringSubmatch(string(p.HTML))
	if m == nil {
		t.Fatalf("no manual key in %s", p.HTML)
	}
	var rec []string
	for _, r := range recoveryRE.FindAllStringSubmatch(string(p.HTML), -1) {
		rec = append(rec, r[1])
	}
	if len(rec) != 10 {
		t.Fatalf("%d recovery codes", len(rec))
	}
	// The same attempt shows the same secret again (reload, second tab).
	p2, _ := f.m.Prompt(ctx, a)
	if secretRE.FindStringSubmatch(string(p2.HTML))[1] != m[1] {
		t.Fatal("secret changed between prompts")
	}
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {"000000"}}); err == nil {
		t.Fatal("wrong enrolment code accepted")
	}
	sub, err := f.m.Verify(ctx, a, url.Values{"code": {code(t, m[1], f.clock.now())}})
	if err != nil || sub != f.sub {
		t.Fatalf("enrolment: %q %v", sub, err)
	}
	return m[1], rec
}

func TestEnrolAndVerify(t *testing.T) {
	ctx := context.Background()
	f := setup(t, nil)
	u := users.User{Subject: f.sub}
	if ok, _ := f.m.Applicable(ctx, u); ok {
		t.Fatal("applicable before enrolment (not mandatory)")
	}
	secret, recovery := f.enrol(t)
	if ok, _ := f.m.Applicable(ctx, u); !ok {
		t.Fatal("not applicable after enrolment")
	}
	// The secret is not stored in clear.
	raw, _ := f.st.Get(ctx, keyRecord+f.sub)
	if strings.Contains(string(raw), secret) {
		t.Fatal("secret stored in clear")
	}
	a := &chain.Attempt{ID: "att-2", Subject: f.sub}
	p, _ := f.m.Prompt(ctx, a)
	if p.HTML != "" || len(p.Fields) != 1 || p.Fields[0].Name != "code" {
		t.Fatalf("verify prompt %+v", p)
	}
	// The enrolment code's time step cannot be used again.
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {code(t, secret, f.clock.now())}}); !isReject(err, "already used") {
		t.Fatalf("replay of the enrolment code: %v", err)
	}
	f.clock.add(30 * time.Second)
	now := f.clock.now()
	// One step of skew either way is fine; two is not.
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {code(t, secret, now.Add(60*time.Second))}}); !isReject(err, "Wrong code") {
		t.Fatalf("code two steps ahead: %v", err)
	}
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {code(t, secret, now.Add(30*time.Second))}}); err != nil {
		t.Fatalf("code one step ahead: %v", err)
	}
	// A code of an earlier step than the last used one is a replay.
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {code(t, secret, now)}}); !isReject(err, "already used") {
		t.Fatalf("older code after a newer one: %v", err)
	}
	// Recovery codes work once each, with spaces and capitals forgiven.
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {" " + strings.ToUpper(recovery[3]) + " "}}); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {recovery[3]}}); !isReject(err, "Wrong code") {
		t.Fatalf("recovery code reused: %v", err)
	}
	// Reset: enrolment again.
	if err := Reset(ctx, f.st, f.sub); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Enrolled(ctx, f.st, f.sub); ok {
		t.Fatal("still enrolled after reset")
	}
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	f := setup(t, nil)
	secret, _ := f.enrol(t)
	a := &chain.Attempt{ID: "att-3", Subject: f.sub}
	for i := 0; i < 5; i++ {
		f.m.Verify(ctx, a, url.Values{"code": {"123456"}})
	}
	f.clock.add(30 * time.Second)
	// Even the right code is refused while locked...
	if _, err := f.m.Verify(ctx, a, url.Values{"code": {code(t, secret, f.clock.now())}}); !isReject(err, "Too many wrong codes") {
		t.Fatalf("locked: %v", err)
	}
	// ...and another attempt (new tab, new login) is locked too: the
	// limit is per user.
	if _, err := f.m.Verify(ctx, &chain.Attempt{ID: "other", Subject: f.sub}, url.Values{"code": {code(t, secret, f.clock.now())}}); !isReject(err, "Too many") {
		t.Fatalf("other attempt: %v", err)
	}
}

func TestMandatoryAndSettings(t *testing.T) {
	f := setup(t, map[string]string{"mandatory": "true", "issuer": "Acme"})
	if ok, _ := f.m.Applicable(context.Background(), users.User{Subject: f.sub}); !ok {
		t.Fatal("mandatory module not applicable to a user who has not enrolled")
	}
	st, _ := embedded.Open(filepath.Join(t.TempDir(), "x.db"), embedded.Options{})
	defer st.Close()
	for _, bad := range []map[string]string{{"mandatory": "maybe"}, {"digits": "8"}} {
		if _, err := New(chain.Deps{Users: users.New(st, nil), Store: st}, bad); err == nil {
			t.Errorf("settings %v accepted", bad)
		}
	}
	if _, err := f.m.Prompt(context.Background(), &chain.Attempt{ID: "x"}); err == nil {
		t.Fatal("totp as first module accepted")
	}
}

func isReject(err error, part string) bool {
	r, ok := chain.IsRejection(err)
	return ok && strings.Contains(r.Message, part)
}
