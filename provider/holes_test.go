package provider_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/store"
)

// watchedStore counts writes and can go away (every call fails).
type watchedStore struct {
	store.Store
	writes atomic.Int64
	down   atomic.Bool
}

var errStoreDown = errors.New("store unreachable")

func (s *watchedStore) fail() error {
	if s.down.Load() {
		return errStoreDown
	}
	return nil
}

func (s *watchedStore) Get(ctx context.Context, k string) ([]byte, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, k)
}
func (s *watchedStore) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Set(ctx, k, v, ttl)
}
func (s *watchedStore) Create(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Create(ctx, k, v, ttl)
}
func (s *watchedStore) Delete(ctx context.Context, k string) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, k)
}
func (s *watchedStore) Take(ctx context.Context, k string) ([]byte, error) {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.Take(ctx, k)
}
func (s *watchedStore) Update(ctx context.Context, k string, ttl time.Duration, fn func([]byte) ([]byte, error)) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Update(ctx, k, ttl, fn)
}
func (s *watchedStore) SetAdd(ctx context.Context, set string, m ...string) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.SetAdd(ctx, set, m...)
}
func (s *watchedStore) SetRemove(ctx context.Context, set string, m ...string) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.SetRemove(ctx, set, m...)
}
func (s *watchedStore) SetMembers(ctx context.Context, set string) ([]string, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Store.SetMembers(ctx, set)
}
func (s *watchedStore) Apply(ctx context.Context, ops ...store.Op) error {
	s.writes.Add(1)
	if err := s.fail(); err != nil {
		return err
	}
	return s.Store.Apply(ctx, ops...)
}

func newWatchedEnv(t *testing.T) (*env, *watchedStore) {
	ws := &watchedStore{}
	e := newEnvWith(t, envSetup{path: "/idp", wrap: func(st store.Store) store.Store { ws.Store = st; return ws }})
	return e, ws
}

// Hole 12: an unauthenticated client can make /authorize and the login
// page write nothing: the request and the attempt travel sealed.
func TestUnauthenticatedRequestsWriteNothing(t *testing.T) {
	e, ws := newWatchedEnv(t)
	before := ws.writes.Load()
	for i := range 50 {
		b := e.browser()
		q := authParams("conf")
		q.Set("state", strings.Repeat("s", 2000))
		q.Set("login_hint", "someone-"+string(rune('a'+i%26)))
		resp, page := b.get(e.authURL(q))
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
			t.Fatalf("authorize %d: %d", i, resp.StatusCode)
		}
		// Reloading the login page writes nothing either.
		if resp, _ := b.get(resp.Request.URL.String()); resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d", resp.StatusCode)
		}
	}
	if n := ws.writes.Load() - before; n != 0 {
		t.Fatalf("50 unauthenticated authorization requests made %d store writes", n)
	}
	// The sealed request still works end to end.
	if cb := e.login(e.browser(), authParams("conf")); cb.Get("code") == "" {
		t.Fatalf("login after: %v", cb)
	}
}

// Hole 12: oversized parameters that would be kept are refused.
func TestOversizedParametersAreRefused(t *testing.T) {
	e := newEnv(t, "")
	for param, n := range map[string]int{"state": 2049, "nonce": 513, "login_hint": 257, "acr_values": 257, "ui_locales": 65} {
		q := authParams("conf")
		q.Set(param, strings.Repeat("a", n))
		resp, page := e.browser().get(e.authURL(q))
		cb := callbackQuery(t, resp, page)
		if cb.Get("error") != "invalid_request" || !strings.Contains(cb.Get("error_description"), param) {
			t.Errorf("%s of %d bytes: %v", param, n, cb)
		}
	}
}

// Hole 5: max_age=0 is a re-authentication that completes, with a fresh
// auth_time (OIDC Core 3.1.2.1).
func TestMaxAgeZeroReauthenticates(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	cb := e.login(b, authParams("conf"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	first := e.verifyIDToken(tok["id_token"].(string), "RS256")
	e.clock.Advance(10 * time.Minute)
	resp, page := b.get(e.authURL(with(authParams("conf"), "max_age", "0")))
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("max_age=0 did not ask to sign in again: %d", resp.StatusCode)
	}
	resp, page = b.submitLogin(resp, page, alicePassword)
	cb = callbackQuery(t, resp, page)
	if cb.Get("code") == "" {
		t.Fatalf("max_age=0 did not complete: %v", cb)
	}
	_, tok = e.token(codeForm(cb.Get("code")), "conf", confSecret)
	second := e.verifyIDToken(tok["id_token"].(string), "RS256")
	if second["auth_time"].(float64) < first["auth_time"].(float64)+600 {
		t.Fatalf("auth_time not fresh: %v then %v", first["auth_time"], second["auth_time"])
	}
	// The fresh sign-in counts for a short max_age right after.
	if cb := e.login(b, with(authParams("conf"), "max_age", "60")); cb.Get("code") == "" {
		t.Fatalf("max_age=60 right after: %v", cb)
	}
}

// Hole 4: tokens describe the current authentication only: after a
// prompt=login with a lower acr, the factor not passed again is gone.
func TestReauthenticationDropsFactorsNotPassedAgain(t *testing.T) {
	cfg := chain.Config{Modules: []chain.ModuleConfig{
		{Name: "Password", Kind: "password", Levels: []string{"1"}},
		{Name: "Second", Kind: "password", Levels: []string{"2"}, After: []string{"Password"}, ShowOnlyWhenNeeded: true},
	}}
	e := newEnvWith(t, envSetup{path: "/idp", chain: &cfg})
	b := e.browser()
	signIn := func(q url.Values, steps int) map[string]any {
		t.Helper()
		resp, page := b.get(e.authURL(q))
		for range steps {
			resp, page = b.submitLogin(resp, page, alicePassword)
		}
		cb := callbackQuery(t, resp, page)
		_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
		return e.verifyIDToken(tok["id_token"].(string), "RS256")
	}
	c := signIn(with(authParams("conf"), "acr_values", "2"), 2)
	if c["acr"] != "2" || !slices.Equal(toStrings(c["acr_levels"]), []string{"1", "2"}) {
		t.Fatalf("level 2 sign-in: acr %v levels %v", c["acr"], c["acr_levels"])
	}
	e.clock.Advance(time.Minute)
	c = signIn(with(with(authParams("conf"), "acr_values", "1"), "prompt", "login"), 1)
	if c["acr"] != "1" || !slices.Equal(toStrings(c["acr_levels"]), []string{"1"}) {
		t.Fatalf("after prompt=login with acr 1 the token still claims acr %v levels %v", c["acr"], c["acr_levels"])
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// Hole 9: id_token_hint must be an ID token this issuer issued to a
// registered client; other JWTs we sign do not sign anyone out unasked.
func TestIDTokenHintMustBeAnIDToken(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	cb := e.login(b, authParams("conf"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	claims := e.verifyIDToken(tok["id_token"].(string), "RS256")
	sid, sub := claims["sid"].(string), claims["sub"].(string)
	now := e.clock.Now()
	forge := func(typ string, c map[string]any) string {
		t.Helper()
		base := map[string]any{"iss": e.issuer, "sub": sub, "sid": sid, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		for k, v := range c {
			base[k] = v
		}
		s, err := e.keys.SignClaims(typ, base)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, hint := range map[string]string{
		"gate assertion": forge("gatehouse-assertion+jwt", map[string]any{"aud": "https://app.example"}),
		"logout token": forge("logout+jwt", map[string]any{"aud": "conf", "jti": "x",
			"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}),
		"security event token": forge("secevent+jwt", map[string]any{"aud": "conf", "jti": "y",
			"events": map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-established": map[string]any{}}}),
		"unregistered audience": forge("JWT", map[string]any{"aud": "https://app.example"}),
		"no sid":                forge("JWT", map[string]any{"aud": "conf", "sid": ""}),
		"other issuer":          forge("JWT", map[string]any{"aud": "conf", "iss": "https://evil.example"}),
		"not a JWT":             "garbage",
	} {
		resp, page := b.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(hint))
		if strings.Contains(page, "You are signed out") {
			t.Fatalf("%s as id_token_hint signed the user out", name)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
		}
	}
	if cb := e.login(b, with(authParams("conf"), "prompt", "none")); cb.Get("code") == "" {
		t.Fatal("session ended by a forged hint")
	}
	// The real ID token signs out at once.
	if _, page := b.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(tok["id_token"].(string))); !strings.Contains(page, "You are signed out") {
		t.Fatalf("real ID token:\n%s", page)
	}
}

// Hole 10: ending a session revokes every access token issued in it.
func TestAccessTokensDieWithTheirSession(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	var tokens []string
	var idToken string
	for range 2 {
		cb := e.login(b, authParams("conf"))
		_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
		tokens = append(tokens, tok["access_token"].(string))
		idToken = tok["id_token"].(string)
	}
	other := e.login(e.browser(), authParams("conf")) // another browser's session
	_, otherTok := e.token(codeForm(other.Get("code")), "conf", confSecret)
	for _, at := range tokens {
		if resp, _ := e.userinfo(at); resp.StatusCode != 200 {
			t.Fatalf("userinfo before logout: %d", resp.StatusCode)
		}
	}
	b.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(idToken))
	for i, at := range tokens {
		if resp, body := e.userinfo(at); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %d after logout: %d %v", i, resp.StatusCode, body)
		}
	}
	if resp, _ := e.userinfo(otherTok["access_token"].(string)); resp.StatusCode != 200 {
		t.Fatalf("another session's token revoked too: %d", resp.StatusCode)
	}
	// A code of the ended session cannot be redeemed either.
	cb := e.login(b, authParams("conf"))
	code := cb.Get("code")
	resp, page := b.get(e.issuer + "/logout")
	b.post(e.issuer+"/logout", loginForm(page))
	_ = resp
	if resp, body := e.token(codeForm(code), "conf", confSecret); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("code of an ended session: %d %v", resp.StatusCode, body)
	}
}

// Hole 11: a logout that cannot be recorded says so, keeps the cookie,
// and can be retried; nothing is reported as signed out that is not.
func TestLogoutDuringAStoreOutage(t *testing.T) {
	e, ws := newWatchedEnv(t)
	b := e.browser()
	cb := e.login(b, authParams("conf"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	hint := url.QueryEscape(tok["id_token"].(string))
	ws.down.Store(true)
	resp, page := b.get(e.issuer + "/logout?id_token_hint=" + hint)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(page, "You are signed out") || !strings.Contains(page, "still signed in") {
		t.Fatalf("logout with the store down: %d\n%s", resp.StatusCode, page)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "gatehouse" && c.MaxAge < 0 {
			t.Fatal("session cookie cleared though the logout failed")
		}
	}
	ws.down.Store(false)
	if cb := e.login(b, with(authParams("conf"), "prompt", "none")); cb.Get("code") == "" {
		t.Fatal("session not live after the failed logout")
	}
	// The page's button tries again.
	resp, page = b.post(e.issuer+"/logout", loginForm(page))
	if resp.StatusCode != 200 || !strings.Contains(page, "You are signed out") {
		t.Fatalf("retry: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if callbackQuery(t, resp, page).Get("error") != "login_required" {
		t.Fatal("old cookie still works after the retried logout")
	}
}

// A sign-out from a browser without the session, with a valid hint,
// ends the hinted session once the person confirms.
func TestLogoutByHintFromAnotherBrowser(t *testing.T) {
	e := newEnv(t, "")
	a := e.browser()
	cb := e.login(a, authParams("conf"))
	_, tok := e.token(codeForm(cb.Get("code")), "conf", confSecret)
	other := e.browser()
	resp, page := other.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(tok["id_token"].(string)))
	if resp.StatusCode != 200 || !strings.Contains(page, "Do you want to sign out") {
		t.Fatalf("hint without the session: %d\n%s", resp.StatusCode, page)
	}
	if cb := e.login(a, with(authParams("conf"), "prompt", "none")); cb.Get("code") == "" {
		t.Fatal("ended before confirmation")
	}
	resp, page = other.post(e.issuer+"/logout", loginForm(page))
	if resp.StatusCode != 200 || !strings.Contains(page, "You are signed out") {
		t.Fatalf("confirmed: %d", resp.StatusCode)
	}
	resp, page = a.get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if callbackQuery(t, resp, page).Get("error") != "login_required" {
		t.Fatal("the hinted session is still live")
	}
}

// A redirect that carries a code (or an error) is not cached anywhere.
func TestCodeRedirectIsNotStored(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	resp, page := b.get(e.authURL(authParams("conf")))
	resp, page = b.submitLogin(resp, page, alicePassword)
	if cb := callbackQuery(t, resp, page); cb.Get("code") == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("code redirect Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	resp, page = b.get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if callbackQuery(t, resp, page).Get("code") == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("SSO code redirect Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	resp, page = e.browser().get(e.authURL(with(authParams("conf"), "prompt", "none")))
	if callbackQuery(t, resp, page).Get("error") == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("error redirect Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}
