package gate

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// Every request the gate decides is reported once to Config.Observe,
// with its outcome.
func TestObserveOutcomes(t *testing.T) {
	var mu sync.Mutex
	var got []string
	cfg := Config{Policy: Policy{Bypass: []string{"/public/*"}, AllowUsers: []string{"alice"}},
		Observe: func(r string) { mu.Lock(); got = append(got, r); mu.Unlock() }}
	g := newTestGate(t, nil, cfg, Site{})
	_, alice := signedIn(t, g, "http://app.localhost", "")
	check := func(host, target string, ck *http.Cookie) {
		r := request(http.MethodGet, host, target)
		if ck != nil {
			r.AddCookie(ck)
		}
		g.Check(httptest.NewRecorder(), r)
	}
	check("app.localhost", "/public/x", nil)
	check("app.localhost", "/a/../b", nil)
	check("evil.localhost", "/x", nil)
	check("app.localhost", "/x", nil)
	check("app.localhost", "/x", alice)
	want := []string{"bypass", "bad_path", "unknown_site", "login", "pass"}
	if !slices.Equal(got, want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}
