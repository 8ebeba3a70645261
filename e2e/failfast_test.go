package e2e

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestHungStoreFailsFast: with Redis hung (stopped, not down), requests
// that need the store are answered within the store timeout (500ms by
// default), and once the circuit breaker has seen it, at once; when
// Redis answers again, so does Gatehouse, by itself.
func TestHungStoreFailsFast(t *testing.T) {
	s := newHolesOnRedis(t, false)
	token := func() (int, time.Duration) {
		t0 := time.Now()
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"no-such-code"}, "redirect_uri": {"http://rp.localhost/callback"}}
		req, _ := http.NewRequest(http.MethodPost, s.issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app", "app-secret")
		c := &http.Client{Transport: loopbackTransport(), Timeout: 30 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(t0)
	}
	if status, _ := token(); status != http.StatusBadRequest {
		t.Fatalf("with Redis up: %d, want 400 (the store answered: no such code)", status)
	}
	pid := s.redisPID(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	const n = 40
	var mu sync.Mutex
	var took []time.Duration
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, d := token()
			if status < 500 {
				t.Errorf("with Redis hung: %d", status)
			}
			mu.Lock()
			took = append(took, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("%d requests with Redis hung: p50 %v, p99 %v, max %v", n, took[n/2], took[n*99/100], took[n-1])
	if took[n/2] > 800*time.Millisecond || took[n-1] > 1200*time.Millisecond {
		t.Fatalf("requests waited p50 %v, max %v for a hung Redis (500ms per call, connecting included)", took[n/2], took[n-1])
	}
	// Now the breaker is open: answers come at once.
	for range 5 {
		if status, d := token(); status < 500 || d > 200*time.Millisecond {
			t.Fatalf("with the breaker open: %d after %v", status, d)
		}
	}
	syscall.Kill(pid, syscall.SIGCONT)
	resumed = true
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _ := token()
		if status == http.StatusBadRequest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis is back but requests still fail: %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
