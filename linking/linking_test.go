package linking

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/users"
)

func newLinker(t *testing.T) *Linker {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	return &Linker{Users: users.New(st, nil)}
}

// Two first sign-ins of one identity at once make one account.
func TestConcurrentFirstSignIns(t *testing.T) {
	l := newLinker(t)
	c := chain.Claims{Issuer: "https://idp.example", Subject: "r-1", Email: "r@idp.example", EmailVerified: true, PreferredUsername: "r", Create: true}
	var wg sync.WaitGroup
	subs := make([]string, 8)
	errs := make([]error, 8)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs[i], errs[i] = l.Link(context.Background(), &chain.Attempt{}, c)
		}()
	}
	wg.Wait()
	for i := range subs {
		// A loser of the race to claim the address may be asked to
		// sign in again (ErrNotLinked); none gets another account.
		if errs[i] != nil && !errors.Is(errs[i], chain.ErrNotLinked) {
			t.Fatalf("%d: %v", i, errs[i])
		}
		if errs[i] == nil && subs[i] != subs[0] && subs[0] != "" {
			t.Fatalf("two accounts: %s %s", subs[i], subs[0])
		}
	}
	all, _ := l.Users.List(context.Background())
	if len(all) != 1 {
		t.Fatalf("%d accounts", len(all))
	}
}

// Usernames come from the remote profile, kept to what usernames allow.
func TestUsername(t *testing.T) {
	for _, tc := range []struct {
		in   chain.Claims
		want string
	}{
		{chain.Claims{PreferredUsername: "octocat"}, "octocat"},
		{chain.Claims{PreferredUsername: "a b/c", Email: "x@y"}, "a.bc"},
		{chain.Claims{Email: "jane.doe@corp.example"}, "jane.doe"},
		{chain.Claims{Name: "Zoë Ünal"}, "Zoë.Ünal"},
		{chain.Claims{PreferredUsername: "///"}, "user"},
	} {
		if got := username(tc.in); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.in, got, tc.want)
		}
	}
}
