package provider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/netguard"
)

// What the provider fetches for a registered client reaches public
// addresses only (on an https issuer, unless private networks are
// allowed); for the admin's clients it reaches what they name.
func TestRegisteredClientsFetchesAreGuarded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"keys":[]}`)) }))
	defer srv.Close()
	f := newRemoteFetcher(time.Now)
	ctx := context.Background()
	if _, err := f.fetch(ctx, srv.URL, "application/json", 1024, false); err != nil {
		t.Fatalf("unguarded fetch from loopback: %v", err)
	}
	if _, err := f.fetch(ctx, srv.URL, "application/json", 1024, true); !errors.Is(err, netguard.ErrNotPublic) {
		t.Fatalf("guarded fetch from loopback: %v", err)
	}
	registered := &Client{ID: "r", RegisteredAt: time.Now()}
	static := &Client{ID: "s"}
	for _, tc := range []struct {
		issuer  string
		private bool
		client  *Client
		want    bool
	}{
		{"https://idp.example", false, registered, true},
		{"https://idp.example", true, registered, false},
		{"http://localhost:9000", false, registered, false},
		{"https://idp.example", false, static, false},
	} {
		p := &Provider{cfg: Config{Issuer: tc.issuer, RegistrationPrivateNetworks: tc.private}}
		if got := p.guarded(tc.client); got != tc.want {
			t.Errorf("guarded(%s, issuer %s, private %v) = %v", tc.client.ID, tc.issuer, tc.private, got)
		}
	}
}
