package gate

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkCheck measures the hot path of a signed-in request (cookie,
// cache, policy, headers) against a baseline that only parses the same
// cookie, and reports the ratio.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	g := newTestGate(b, nil, Config{Policy: Policy{ACR: []string{"1"}}}, Site{})
	s := &Session{ID: "sess-1", Origin: "http://app.localhost", Subject: "sub", Username: "alice", Email: "a@example.com", Name: "Alice",
		Groups: []string{"staff", "ops"}, ACR: "1", Levels: []string{"1"}, AuthTime: time.Now(), Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := g.save(ctx, s); err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	g.cookies.set(rec, s.Origin, s.ID, time.Hour)
	cookie := rec.Result().Cookies()[0]
	newReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://app.localhost/page", nil)
		r.Header.Set("Accept", "text/html")
		r.Header.Set("User-Agent", "bench")
		r.Header.Set("Remote-User", "spoof")
		r.AddCookie(cookie)
		return r
	}
	var base, gated float64
	b.Run("baseline-cookie-parse", func(b *testing.B) {
		for b.Loop() {
			r := newReq()
			if _, err := r.Cookie(cookie.Name); err != nil {
				b.Fatal(err)
			}
		}
		base = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("gate-check", func(b *testing.B) {
		for b.Loop() {
			r := newReq()
			if s, handled := g.Check(nil, r); handled || s == nil {
				b.Fatal("not passed")
			}
		}
		gated = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if base > 0 {
		b.Logf("gate check %.0f ns/op vs %.0f ns/op baseline (request build + cookie parse): extra %.2f µs, ratio %.2f",
			gated, base, (gated-base)/1000, gated/base)
	}
	// Ten thousand signed-in sessions, each request another one's: the
	// cache no longer sits in the CPU's caches.
	const many = 10_000
	reqs := make([]*http.Request, many)
	cookies := make([]string, many)
	for i := range reqs {
		x := *s
		x.ID = fmt.Sprintf("sess-%d", i)
		if err := g.save(ctx, &x); err != nil {
			b.Fatal(err)
		}
		rec := httptest.NewRecorder()
		g.cookies.set(rec, x.Origin, x.ID, time.Hour)
		reqs[i] = httptest.NewRequest(http.MethodGet, "http://app.localhost/page", nil)
		reqs[i].AddCookie(rec.Result().Cookies()[0])
		cookies[i] = reqs[i].Header.Get("Cookie")
		if _, handled := g.Check(nil, reqs[i]); handled {
			b.Fatal("not passed")
		}
	}
	b.Run("gate-check-10k-sessions", func(b *testing.B) {
		r, i := newReq(), 0
		for b.Loop() {
			r.Header["Cookie"][0] = cookies[i%many]
			i += 7919 // a prime: every session in turn, out of order
			if s, handled := g.Check(nil, r); handled || s == nil {
				b.Fatal("not passed")
			}
		}
	})
}
