package users

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
)

func TestPasswordPolicy(t *testing.T) {
	p := DefaultPasswordPolicy()
	u := User{Username: "alice", Email: "alice.smith@example.com", Name: "Alice Smith"}
	for _, bad := range []struct{ pw, why string }{
		{"x", "at least 12"},
		{"short-pw", "at least 12"},
		{"password1234", "too easy"},
		{"qwertyuiop123", "too easy"},
		{"123456789012", "too easy"},
		{"aaaaaaaaaaaaaaaa", "too easy"},
		{"ILoveAlice2024!", "must not contain"},
		{"my-alice.smith-pw-x", "must not contain"},
		{"Password2024!", "too easy"},
		{strings.Repeat("Zq9!", 40), "at most 128"},
		{"\xff\xfe invalid utf8 text", "not valid"},
	} {
		err := p.Check(bad.pw, u)
		var pe *PolicyError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, bad.why) {
			t.Errorf("%q: %v, want a refusal saying %q", bad.pw, err, bad.why)
		}
	}
	for _, good := range []string{"correct horse battery", "demo-password-change-me", "tulip-orbit-canoe-gravel"} {
		if err := p.Check(good, u); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	for _, bad := range []PasswordPolicy{{MinLength: 4}, {MinLength: 12, MaxLength: 10}, {MinStrength: 5}} {
		if bad.Validate() == nil {
			t.Errorf("policy %+v validated", bad)
		}
	}
}

func TestDirectoryAppliesThePolicy(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	pol := DefaultPasswordPolicy()
	d := NewWith(st, Options{Policy: &pol})
	ctx := context.Background()
	if _, err := d.Create(ctx, User{Username: "bob"}, "x"); err == nil {
		t.Fatal("weak password accepted at create")
	}
	if _, err := d.Lookup(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused create left a user")
	}
	u, err := d.Create(ctx, User{Username: "bob"}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetPassword(ctx, u.Subject, "password1234"); err == nil {
		t.Fatal("weak password accepted at change")
	}
	if _, err := d.Authenticate(ctx, "bob", "correct horse battery"); err != nil {
		t.Fatalf("a refused change changed the password: %v", err)
	}
}

func TestHasherBoundsConcurrentChecks(t *testing.T) {
	h, err := NewHasher(DefaultArgon2(), 2, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := h.Hash(context.Background(), "pw")
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy, max := 0, 0
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := h.Check(context.Background(), hash, "pw")
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrBusy) {
				busy++
			}
			if n := h.InUse(); n > max {
				max = n
			}
		}()
	}
	wg.Wait()
	if max > 2 {
		t.Fatalf("%d checks ran at once, limit 2", max)
	}
	if busy == 0 {
		t.Fatal("12 checks at once with 2 slots and a 50ms wait: none was turned away")
	}
	if h.InUse() != 0 {
		t.Fatal("slots leaked")
	}
}

func TestRehashOnLogin(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	old, _ := NewHasher(Argon2Params{Memory: 8 * 1024, Time: 3, Threads: 1}, 0, 0)
	d := NewWith(st, Options{Hasher: old})
	u, err := d.Create(ctx, User{Username: "carol"}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u.PasswordHash, "m=8192,t=3") {
		t.Fatalf("hash %s", u.PasswordHash)
	}
	d2 := NewWith(st, Options{}) // the parameters were raised
	if _, err := d2.Authenticate(ctx, "carol", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	got, _ := d2.Get(ctx, u.Subject)
	if !strings.Contains(got.PasswordHash, "m=19456,t=2,p=1") {
		t.Fatalf("not rehashed: %s", got.PasswordHash)
	}
	if _, err := d2.Authenticate(ctx, "carol", "correct horse battery"); err != nil {
		t.Fatalf("rehashed password: %v", err)
	}
	if _, err := NewHasher(Argon2Params{Memory: 1024}, 0, 0); err == nil {
		t.Fatal("1 MiB accepted")
	}
}
