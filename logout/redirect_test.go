package logout

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-idp/gatehouse/internal/netguard"
)

// TestDeliveryFollowsNoRedirect: a back-channel logout URI is where the
// logout token is posted, and nowhere else. A receiver answering with a
// redirect (307 keeps the method and body) must not bounce the POST to
// another address — a registered client could otherwise aim the
// provider's POST at a service on its own machine or network (a
// loopback admin API), out of reach of the rules on registered URIs.
func TestDeliveryFollowsNoRedirect(t *testing.T) {
	var hit atomic.Int64
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer inside.Close()
	bouncer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/stop", http.StatusTemporaryRedirect)
	}))
	defer bouncer.Close()
	e := newEnv(t, bouncer.URL+"/bcl")
	ctx := context.Background()
	s := e.session(t, "alice", "rp")
	if err := e.svc.End(ctx, s.ID, ByClient); err != nil {
		t.Fatal(err)
	}
	q := e.svc.Queue()
	q.deliverDue(ctx)
	if n := hit.Load(); n != 0 {
		t.Fatalf("the logout POST was redirected to another address %d time(s)", n)
	}
	if q.Stats.Delivered.Load() != 0 || q.Stats.Failed.Load() != 1 {
		t.Fatalf("a redirect counts as a failed delivery: delivered %d, failed %d", q.Stats.Delivered.Load(), q.Stats.Failed.Load())
	}
}

// A receiver named by an untrusted client is reached on public
// addresses only: a loopback one is not posted to.
func TestUntrustedDeliveryReachesPublicAddressesOnly(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	q := NewQueue(QueueConfig{})
	if err := q.post(context.Background(), srv.URL, "tok", true); !errors.Is(err, netguard.ErrNotPublic) {
		t.Fatalf("untrusted post to loopback: %v", err)
	}
	if err := q.post(context.Background(), srv.URL, "tok", false); err != nil {
		t.Fatalf("trusted post to loopback: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d posts reached the receiver, want 1", hits.Load())
	}
}
