package provider_test

import (
	"net/url"
	"sync"
	"testing"

	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

func regulated(c *provider.Config) {
	l, err := regulate.New(c.Store, regulate.DefaultPolicy(), c.Sessions.Now)
	if err != nil {
		panic(err)
	}
	c.Regulate = l
}

// A busy client with the right secret is never slowed by regulation,
// however many of its requests run at once; guesses sent at once are
// counted one by one, so only the free ones are checked before the
// delays and the ban refuse the rest.
func TestClientSecretRegulationUnderConcurrency(t *testing.T) {
	e := newEnv(t, "", regulated)
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"reports:read"}}
	const n = 40
	run := func(secret string) map[int]int {
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, _ := e.token(cc, "svc", secret)
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return statuses
	}
	for round := range 3 {
		if got := run("svc-secret"); got[200] != n {
			t.Fatalf("round %d: %d concurrent right requests: %v", round, n, got)
		}
	}
	got := run("wrong-secret")
	t.Logf("%d wrong secrets at once: %d checked (401), %d refused unchecked (429)", n, got[401], got[429])
	rule := regulate.DefaultPolicy()[regulate.KindClient]
	if got[401] > rule.FreeRetries+1 || got[401]+got[429] != n {
		t.Fatalf("%d concurrent guesses: %v; want at most %d checked (401), the rest refused unchecked (429)", n, got, rule.FreeRetries+1)
	}
	// A public client that sends an (empty) Basic header is refused but
	// not counted as a guess.
	for range 20 {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}
		if resp, out := e.token(form, "spa", ""); resp.StatusCode != 401 || out["error"] != "invalid_client" {
			t.Fatalf("public client with Basic: %d %v", resp.StatusCode, out)
		}
	}
	if resp, out := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"spa"}}, "", ""); resp.StatusCode != 400 {
		t.Fatalf("public client after its Basic mistakes: %d %v", resp.StatusCode, out)
	}
}
