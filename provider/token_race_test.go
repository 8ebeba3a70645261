package provider_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/store"
)

// hookStore wraps the provider's store so a test can step into the
// middle of a request (between two store operations).
type hookStore struct {
	store.Store
	mu    sync.Mutex
	onSet func(key string)
}

func (h *hookStore) setHook(fn func(key string)) { h.mu.Lock(); h.onSet = fn; h.mu.Unlock() }

func (h *hookStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	h.mu.Lock()
	fn := h.onSet
	h.mu.Unlock()
	if fn != nil {
		fn(key)
	}
	return h.Store.Set(ctx, key, value, ttl)
}

func (h *hookStore) Apply(ctx context.Context, ops ...store.Op) error {
	h.mu.Lock()
	fn := h.onSet
	h.mu.Unlock()
	if fn != nil {
		for _, o := range ops {
			if o.Kind() == store.OpPut || o.Kind() == store.OpCreate {
				fn(o.Key())
			}
		}
	}
	return h.Store.Apply(ctx, ops...)
}

type tokenResult struct {
	status int
	body   map[string]any
	err    error
}

// postToken is e.token without testing.T, for use off the test goroutine.
func (e *env) postToken(form url.Values, user, pass string) tokenResult {
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return tokenResult{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return tokenResult{status: resp.StatusCode, err: err}
	}
	return tokenResult{status: resp.StatusCode, body: m}
}

// A replay that lands while the first exchange of the code is still being
// served must still leave no working access token behind (RFC 6749
// §4.1.2: the tokens of a replayed code are revoked).
func TestCodeReplayDuringFirstExchange(t *testing.T) {
	hs := &hookStore{}
	e := newEnv(t, "", func(c *provider.Config) { hs.Store = c.Store; c.Store = hs })
	code := e.login(e.browser(), authParams("conf")).Get("code")

	reached, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	hs.setHook(func(key string) {
		// Hold the first access token write until the replay is done.
		if strings.HasPrefix(key, "at:") && first.CompareAndSwap(false, true) {
			close(reached)
			<-release
		}
	})
	resA := make(chan tokenResult, 1)
	go func() { resA <- e.postToken(codeForm(code), "conf", confSecret) }()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the first exchange never wrote an access token")
	}
	b := e.postToken(codeForm(code), "conf", confSecret)
	close(release)
	a := <-resA
	hs.setHook(nil)

	ok := 0
	for name, r := range map[string]tokenResult{"first": a, "replay": b} {
		if r.err != nil {
			t.Fatalf("%s exchange: %v", name, r.err)
		}
		switch r.status {
		case http.StatusOK:
			ok++
			at, _ := r.body["access_token"].(string)
			if resp, m := e.userinfo(at); resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_token" {
				t.Errorf("%s exchange's access token still works after the code was replayed: %d %v", name, resp.StatusCode, m)
			}
			rt, _ := r.body["refresh_token"].(string)
			if status, m := e.refresh(rt, "conf", confSecret); status != http.StatusBadRequest {
				t.Errorf("%s exchange's refresh token still works after the code was replayed: %d %v", name, status, m)
			}
		case http.StatusBadRequest:
			if r.body["error"] != "invalid_grant" {
				t.Errorf("%s exchange: %v", name, r.body)
			}
		default:
			t.Errorf("%s exchange: %d %v", name, r.status, r.body)
		}
	}
	if ok != 1 {
		t.Fatalf("%d exchanges of one code succeeded, want 1 (first %d %v, replay %d %v)", ok, a.status, a.body, b.status, b.body)
	}
}

// A code stays redeemable for the whole configured CodeTTL, even after a
// failed attempt (wrong verifier) and when CodeTTL is longer than the
// replay-detection window.
func TestLongCodeTTLSurvivesFailedAttempt(t *testing.T) {
	e := newEnv(t, "", func(c *provider.Config) { c.CodeTTL = 15 * time.Minute })
	code := e.login(e.browser(), authParams("conf")).Get("code")
	if resp, m := e.token(with(codeForm(code), "code_verifier", strings.Repeat("w", 43)), "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", resp.StatusCode, m)
	}
	e.clock.Advance(12 * time.Minute)
	if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 200 {
		t.Fatalf("code refused 12 minutes into a 15-minute CodeTTL: %d %v", resp.StatusCode, m)
	}
	e.clock.Advance(4 * time.Minute)
	if resp, m := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v", resp.StatusCode, m)
	}
}
