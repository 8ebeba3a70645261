package gate

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gatehouse-idp/gatehouse/browser"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
)

type nopSigner struct{}

func (nopSigner) SignClaims(string, any) (string, error) { return "token", nil }

// testStore is an embedded store closed at the end of the test.
func testStore(t testing.TB) *embedded.Store {
	st, err := embedded.Open(filepath.Join(t.TempDir(), "g.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newTestGate builds a gate over st (a fresh store when nil) with cfg's
// blanks filled in, bound to site (origins http://app.localhost when
// none).
func newTestGate(t testing.TB, st store.Store, cfg Config, site Site) *Gate {
	t.Helper()
	ctx := context.Background()
	if st == nil {
		st = testStore(t)
	}
	cfg.Store = st
	if cfg.Issuer == "" {
		cfg.Issuer, cfg.ClientID = "http://idp.localhost", "c"
	}
	if cfg.Cookies == nil {
		b, err := browser.New(ctx, st, browser.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Cookies = b
	}
	if cfg.Queue == nil {
		cfg.Queue = logout.NewQueue(logout.QueueConfig{Store: st, Issuer: cfg.Issuer, Signer: nopSigner{}})
	}
	g, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(site.Origins) == 0 {
		site.Origins = []string{"http://app.localhost"}
	}
	if site.Headers == (Headers{}) {
		site.Headers = DefaultHeaders()
	}
	if err := g.Bind(site); err != nil {
		t.Fatal(err)
	}
	return g
}
