package browser

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
)

func newStore(t *testing.T) *memstore.Store {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	return st
}

func newState(t *testing.T, st store.Store) *State {
	t.Helper()
	s, err := New(context.Background(), st, Options{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeysPersistedAndShared(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	a := newState(t, st)
	raw, err := st.Get(ctx, keyStoreKey)
	if err != nil {
		t.Fatalf("keys not saved: %v", err)
	}
	var k stored
	if err := json.Unmarshal(raw, &k); err != nil || !k.valid() {
		t.Fatalf("stored keys %s: %v", raw, err)
	}
	b := newState(t, st) // another instance, or after a restart
	if again, _ := st.Get(ctx, keyStoreKey); string(again) != string(raw) {
		t.Fatal("second instance replaced the keys")
	}
	v, _ := a.Encode("c", "value")
	var got string
	if err := b.Decode("c", v, &got); err != nil || got != "value" {
		t.Fatalf("second instance cannot read the first's cookie: %v", err)
	}
	if !b.CheckCSRF("br", "p", a.CSRFToken("br", "p")) || !b.Verify("x", "d", a.Sign("x", "d")) {
		t.Fatal("second instance refuses the first's tokens")
	}
	sealed, _ := a.Seal("purpose", map[string]int{"n": 1}, time.Minute)
	var m map[string]int
	if err := b.Open("purpose", sealed, &m); err != nil || m["n"] != 1 {
		t.Fatalf("second instance cannot open a sealed value: %v", err)
	}
	other := newState(t, newStore(t)) // another deployment
	if other.Decode("c", v, &got) == nil || other.CheckCSRF("br", "p", a.CSRFToken("br", "p")) ||
		other.Verify("x", "d", a.Sign("x", "d")) || other.Open("purpose", sealed, &m) == nil {
		t.Fatal("another deployment accepts this one's values")
	}
}

func TestKeysRaceAndCorruption(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	const n = 8
	states := make([]*State, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := New(ctx, st, Options{})
			if err != nil {
				t.Error(err)
			}
			states[i] = s
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	tok := states[0].CSRFToken("b", "p")
	for i, s := range states {
		if !s.CheckCSRF("b", "p", tok) {
			t.Fatalf("instance %d started concurrently has other keys", i)
		}
	}
	for _, bad := range []string{"not json", `{"hash":"AA==","block":"AA==","csrf":"AA=="}`, `{}`} {
		st.Set(ctx, keyStoreKey, []byte(bad), 0)
		if _, err := New(ctx, st, Options{}); err == nil {
			t.Errorf("corrupt keys %q accepted", bad)
		}
	}
}

// The store loses its data (Redis flushed) and one instance restarts with
// new keys: after a Sync on each, both accept each other's cookies, the
// old ones included.
func TestSyncRecoversFromALostStore(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	a := newState(t, st)
	oldCookie, _ := a.Encode("c", "from-a")
	oldCSRF := a.CSRFToken("br", "p")
	// The store is flushed; b starts on the empty store and creates keys.
	st.Delete(ctx, keyStoreKey)
	b := newState(t, st)
	newCookie, _ := b.Encode("c", "from-b")
	var got string
	if a.Decode("c", newCookie, &got) == nil {
		t.Fatal("test premise: a already knows b's keys")
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*State{"a": a, "b": b} {
		if err := s.Decode("c", newCookie, &got); err != nil || got != "from-b" {
			t.Errorf("%s refuses the new cookie: %v", name, err)
		}
		if err := s.Decode("c", oldCookie, &got); err != nil || got != "from-a" {
			t.Errorf("%s refuses the cookie issued before the flush: %v", name, err)
		}
		if !s.CheckCSRF("br", "p", oldCSRF) {
			t.Errorf("%s refuses an old CSRF token", name)
		}
	}
	// Both now sign with the same current key.
	if a.Sign("p", "d") != b.Sign("p", "d") {
		t.Fatal("instances sign with different keys after sync")
	}
	// The store was flushed again: a Sync writes the keys back.
	st.Delete(ctx, keyStoreKey)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, keyStoreKey); err != nil {
		t.Fatalf("keys not written back: %v", err)
	}
	c := newState(t, st)
	if err := c.Decode("c", newCookie, &got); err != nil {
		t.Fatalf("an instance started after the write-back refuses cookies: %v", err)
	}
	// Merging is bounded.
	for range 6 {
		st.Delete(ctx, keyStoreKey)
		newState(t, st)
		if err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := st.Get(ctx, keyStoreKey)
	var k stored
	json.Unmarshal(raw, &k)
	if len(k.Previous) > maxPrevious {
		t.Fatalf("%d previous key sets kept", len(k.Previous))
	}
}

func TestSeal(t *testing.T) {
	st := newStore(t)
	now := time.Unix(1_800_000_000, 0)
	s, err := New(context.Background(), st, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	type v struct{ A string }
	tok, err := s.Seal("p", v{"x"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got v
	if err := s.Open("p", tok, &got); err != nil || got.A != "x" {
		t.Fatalf("Open: %v %+v", err, got)
	}
	if strings.Contains(tok, "x\"") {
		t.Fatal("sealed value is readable")
	}
	if s.Open("other", tok, &got) == nil {
		t.Fatal("opened for another purpose")
	}
	raw := []byte(tok)
	raw[len(raw)/2] ^= 1
	for name, bad := range map[string]string{"flipped": string(raw), "truncated": tok[:20], "empty": "", "garbage": "!!!"} {
		if s.Open("p", bad, &got) == nil {
			t.Errorf("%s token opened", name)
		}
	}
	now = now.Add(2 * time.Minute)
	if s.Open("p", tok, &got) == nil {
		t.Fatal("expired token opened")
	}
}

func TestBrowserIDAndCookiePolicy(t *testing.T) {
	for _, secure := range []bool{true, false} {
		s, err := New(context.Background(), newStore(t), Options{Secure: secure})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		id := s.BrowserID(w, r)
		if id == "" || s.BrowserID(w, r) != id {
			t.Fatal("browser id not stable within a request")
		}
		cs := w.Result().Cookies()
		want := "gatehouse-b"
		if secure {
			want = "__Host-gatehouse-b"
		}
		if len(cs) != 1 || cs[0].Name != want || cs[0].Secure != secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteLaxMode || cs[0].Path != "/" {
			t.Fatalf("secure=%v: %+v", secure, cs)
		}
	}
}

// FuzzOpenAndDecode: no input makes cookie decoding or unsealing panic or
// accept a value it did not make.
func FuzzOpenAndDecode(f *testing.F) {
	st := memstore.New()
	s, err := New(context.Background(), st, Options{})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Seal("p", "v", time.Hour)
	cookie, _ := s.Encode("c", "v")
	f.Add(good)
	f.Add(cookie)
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		var v string
		if s.Open("p", in, &v) == nil && in != good {
			t.Fatalf("forged sealed value %q opened", in)
		}
		if s.Decode("c", in, &v) == nil && in != cookie {
			t.Fatalf("forged cookie %q decoded", in)
		}
		s.CheckCSRF("b", "p", in)
		s.Verify("p", "d", in)
	})
}
