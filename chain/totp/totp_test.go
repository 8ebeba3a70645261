package totp

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/gatehouse-idp/gatehouse/store"
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
	root  *embedded.Store // the whole store
	st    *store.Prefixed // the module's
	dir   *users.Directory
	clock *clock
	sub   string
}

func setup(t *testing.T, s Settings) *fixture {
	t.Helper()
	root, err := embedded.Open(filepath.Join(t.TempDir(), "t.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	dir := users.New(root, nil)
	u, _ := dir.Create(context.Background(), users.User{Username: "alice"}, "pw")
	f := &fixture{root: root, dir: dir, clock: &clock{t: time.Unix(1_800_000_000, 0)}, sub: u.Subject}
	f.m = f.instance(t, "totp", s)
	f.st = f.m.st
	return f
}

// instance builds a module named name on the fixture's store.
func (f *fixture) instance(t *testing.T, name string, s Settings) *Module {
	t.Helper()
	m, err := New(chain.Deps{Name: name, Users: f.dir, Store: store.WithPrefix(f.root, "mod:"+name+":"), Now: f.clock.now}, s)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*Module)
}

func (f *fixture) verify(a *chain.Attempt, code string) (string, error) {
	return verifyWith(f.m, a, code)
}

func verifyWith(m *Module, a *chain.Attempt, code string) (string, error) {
	id, err := m.Verify(context.Background(), a, url.Values{"code": {code}})
	if err == nil && (len(id.AMR) != 1 || id.AMR[0] != "otp") {
		return "", fmt.Errorf("amr %v", id.AMR)
	}
	return id.Subject, err
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
	if _, err := f.verify(a, "000000"); err == nil {
		t.Fatal("wrong enrolment code accepted")
	}
	sub, err := f.verify(a, code(t, m[1], f.clock.now()))
	if err != nil || sub != f.sub {
		t.Fatalf("enrolment: %q %v", sub, err)
	}
	return m[1], rec
}

func TestEnrolAndVerify(t *testing.T) {
	ctx := context.Background()
	f := setup(t, Settings{})
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
	if _, err := f.verify(a, code(t, secret, f.clock.now())); !isReject(err, "already used") {
		t.Fatalf("replay of the enrolment code: %v", err)
	}
	f.clock.add(30 * time.Second)
	now := f.clock.now()
	// One step of skew either way is fine; two is not.
	if _, err := f.verify(a, code(t, secret, now.Add(60*time.Second))); !isReject(err, "Wrong code") {
		t.Fatalf("code two steps ahead: %v", err)
	}
	if _, err := f.verify(a, code(t, secret, now.Add(30*time.Second))); err != nil {
		t.Fatalf("code one step ahead: %v", err)
	}
	// A code of an earlier step than the last used one is a replay.
	if _, err := f.verify(a, code(t, secret, now)); !isReject(err, "already used") {
		t.Fatalf("older code after a newer one: %v", err)
	}
	// Recovery codes work once each, with spaces and capitals forgiven.
	if _, err := f.verify(a, " "+strings.ToUpper(recovery[3])+" "); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, err := f.verify(a, recovery[3]); !isReject(err, "Wrong code") {
		t.Fatalf("recovery code reused: %v", err)
	}
	// Reset (the admin action): enrolment again.
	if acts := f.m.Actions(); len(acts) != 1 || acts[0].Name != "reset" || !acts[0].ForgetDevices {
		t.Fatalf("actions %+v", acts)
	}
	if _, err := f.m.Act(ctx, "reset", users.User{Subject: f.sub, Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.m.enrolled(ctx, f.sub); ok {
		t.Fatal("still enrolled after reset")
	}
	if _, err := f.m.Act(ctx, "explode", users.User{Subject: f.sub}); err == nil {
		t.Fatal("unknown action ran")
	}
}

func TestRateLimit(t *testing.T) {
	f := setup(t, Settings{})
	secret, _ := f.enrol(t)
	a := &chain.Attempt{ID: "att-3", Subject: f.sub}
	for i := 0; i < 5; i++ {
		f.verify(a, "123456")
	}
	f.clock.add(30 * time.Second)
	// Even the right code is refused while locked...
	if _, err := f.verify(a, code(t, secret, f.clock.now())); !isReject(err, "Too many wrong codes") {
		t.Fatalf("locked: %v", err)
	}
	// ...and another attempt (new tab, new login) is locked too: the
	// limit is per user.
	if _, err := f.verify(&chain.Attempt{ID: "other", Subject: f.sub}, code(t, secret, f.clock.now())); !isReject(err, "Too many") {
		t.Fatalf("other attempt: %v", err)
	}
}

func TestMandatoryAndSettings(t *testing.T) {
	f := setup(t, Settings{Mandatory: true, Issuer: "Acme"})
	if ok, _ := f.m.Applicable(context.Background(), users.User{Subject: f.sub}); !ok {
		t.Fatal("mandatory module not applicable to a user who has not enrolled")
	}
	for _, bad := range []string{`{"mandatory": "maybe"}`, `{"digits": 8}`, `{"issuer": 7}`, `["mandatory"]`} {
		if err := chain.CheckSettings("totp", json.RawMessage(bad)); err == nil {
			t.Errorf("settings %s accepted", bad)
		}
	}
	// Settings written before they were typed (all strings) still read.
	if err := chain.CheckSettings("totp", json.RawMessage(`{"mandatory": "true", "issuer": "Acme"}`)); err != nil {
		t.Errorf("string settings: %v", err)
	}
	if _, err := f.m.Prompt(context.Background(), &chain.Attempt{ID: "x"}); err == nil {
		t.Fatal("totp as first module accepted")
	}
}

// toLegacy moves a module's records to where TOTP kept them before
// module instances had stores of their own: "totp:<sub>" and "keys:totp"
// at the top of the store (the record format is unchanged).
func (f *fixture) toLegacy(t *testing.T, m *Module) {
	t.Helper()
	ctx := context.Background()
	for _, k := range []string{keyRecord + f.sub, keyCipher} {
		v, err := m.st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.root.Set(ctx, k, v, 0); err != nil {
			t.Fatal(err)
		}
		m.st.Delete(ctx, k)
	}
}

// An enrolment made before the prefixed store keeps working: read, it
// moves into the instance's store (the cipher key is copied); the old
// record is gone, and a replayed step is still refused.
func TestLegacyEnrolmentMigrates(t *testing.T) {
	ctx := context.Background()
	f := setup(t, Settings{})
	old := f.instance(t, "before", Settings{})
	f.m = old
	secret, recovery := f.enrol(t)
	f.toLegacy(t, old)

	m := f.instance(t, "totp", Settings{})
	if ok, err := m.Applicable(ctx, users.User{Subject: f.sub}); !ok || err != nil {
		t.Fatalf("legacy enrolment not seen: %v %v", ok, err)
	}
	if _, err := f.root.Get(ctx, keyRecord+f.sub); err == nil {
		t.Fatal("legacy record still at its old key after the move")
	}
	if _, err := m.st.Get(ctx, keyRecord+f.sub); err != nil {
		t.Fatalf("record not in the instance's store: %v", err)
	}
	a := &chain.Attempt{ID: "after", Subject: f.sub}
	if _, err := verifyWith(m, a, code(t, secret, f.clock.now())); !isReject(err, "already used") {
		t.Fatalf("the enrolment step replayed after the move: %v", err)
	}
	f.clock.add(30 * time.Second)
	if sub, err := verifyWith(m, a, code(t, secret, f.clock.now())); err != nil || sub != f.sub {
		t.Fatalf("code after the move: %q %v", sub, err)
	}
	if _, err := verifyWith(m, a, recovery[0]); err != nil {
		t.Fatalf("recovery code after the move: %v", err)
	}
	if _, err := f.root.Get(ctx, keyCipher); err != nil {
		t.Fatalf("the old cipher key was removed (another instance may need it): %v", err)
	}
	// A user enrolled before and reset before ever signing in again:
	// the reset removes the old record too, so it is not moved back in.
	f2 := setup(t, Settings{})
	old2 := f2.instance(t, "before", Settings{})
	f2.m = old2
	f2.enrol(t)
	f2.toLegacy(t, old2)
	m2 := f2.instance(t, "totp", Settings{})
	if _, err := m2.Act(ctx, "reset", users.User{Subject: f2.sub}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m2.Applicable(ctx, users.User{Subject: f2.sub}); ok {
		t.Fatal("a reset legacy enrolment came back")
	}
	if _, err := f2.root.Get(ctx, keyRecord+f2.sub); err == nil {
		t.Fatal("legacy record survived the reset")
	}
}

func isReject(err error, part string) bool {
	r, ok := chain.IsRejection(err)
	return ok && strings.Contains(r.Message, part)
}
