package oidc_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/chain/oidc"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
)

// A sign-in asked to be fresh (prompt=login, max_age) asks the provider
// for a new authentication and refuses an answer whose auth_time is
// older than the request (beyond a minute of clock skew), or missing.
func TestFreshSignInAtTheProvider(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	p := newOP(t, clk.now)
	st := memstore.New()
	defer st.Close()
	const callback = "http://rp.example/cb"
	m, err := oidc.New(chain.Deps{Name: "Corp", Chain: []chain.ModuleConfig{{Name: "Corp", Kind: "oidc", Levels: []string{"1"}}},
		HTTP: http.DefaultClient, Now: clk.now, Logger: slog.Default(), Store: store.WithPrefix(st, "m:"), CallbackURL: callback},
		oidc.Settings{Issuer: p.URL, ClientID: "gatehouse", ClientSecret: "s3cret"}, "oidc")
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	run := func(force bool, authTime any) (url.Values, error) {
		a := &chain.Attempt{}
		a.Req.Since, a.Req.ForceLogin = clk.now(), force
		if !force {
			a.Req.Since = clk.now().Add(-10 * time.Minute) // max_age 600
		}
		to, keep, err := m.Redirect(context.Background(), a, "st", callback)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(to)
		p.signIn(map[string]any{"sub": "s"})
		p.mu.Lock()
		p.tamper = func(c map[string]any) {
			if authTime == nil {
				delete(c, "auth_time")
			} else {
				c["auth_time"] = authTime
			}
		}
		p.mu.Unlock()
		resp, err := noFollow.Get(to)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back := httptest.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
		_ = back.ParseForm()
		_, err = m.Callback(context.Background(), a, back, keep)
		return u.Query(), err
	}
	now := clk.now().Unix()
	q, err := run(true, now)
	if err != nil || q.Get("prompt") != "login" {
		t.Fatalf("prompt=login: %v %v", q, err)
	}
	if q, err := run(false, now-300); err != nil || q.Get("max_age") != "600" || q.Get("prompt") != "" {
		t.Fatalf("max_age: %v %v", q, err)
	}
	if _, err := run(true, now-30); err != nil {
		t.Fatalf("30s of skew refused: %v", err)
	}
	for _, at := range []any{now - 3600, nil, "yesterday"} {
		if _, err := run(true, at); err == nil {
			t.Fatalf("auth_time %v accepted", at)
		} else if _, ok := chain.IsRejection(err); !ok {
			t.Fatalf("auth_time %v: %v", at, err)
		}
	}
}
