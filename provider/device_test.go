package provider_test

import (
	"context"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// The device clients: tv (public, device_code and refresh_token) and
// cli (confidential, device_code only, email as its only scope).
const cliSecret = "cli-secret"

// newDeviceEnv is an env with the device clients and an audit trail.
func newDeviceEnv(t *testing.T, opts ...func(*provider.Config)) (*env, *auditBuffer) {
	t.Helper()
	trail := &auditBuffer{}
	opts = append([]func(*provider.Config){func(c *provider.Config) {
		c.Audit = audit.New(slog.New(slog.NewJSONHandler(trail, nil)))
	}}, opts...)
	e := newEnv(t, "", opts...)
	addDeviceClients(t, e)
	return e, trail
}

func addDeviceClients(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	tv := provider.Client{ID: "tv", Name: "Living Room TV", Public: true,
		ClientSettings: provider.ClientSettings{GrantTypes: []string{provider.GrantDeviceCode, provider.GrantRefreshToken}}}
	cli := provider.Client{ID: "cli", Scopes: []string{"email"},
		ClientSettings: provider.ClientSettings{GrantTypes: []string{provider.GrantDeviceCode}}}
	if err := e.clients.Add(ctx, tv, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.clients.Add(ctx, cli, cliSecret); err != nil {
		t.Fatal(err)
	}
}

// withRegulation regulates guessing with the default policy.
func withRegulation(c *provider.Config) {
	l, err := regulate.New(c.Store, regulate.DefaultPolicy(), c.Sessions.Now)
	if err != nil {
		panic(err)
	}
	c.Regulate = l
}

// startDevice asks for a device code as the tv client.
func (e *env) startDevice(scope string) map[string]any {
	e.t.Helper()
	resp, m := e.postForm("/device_authorization", url.Values{"client_id": {"tv"}, "scope": {scope}}, "", "")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("device authorization: %d %v", resp.StatusCode, m)
	}
	return m
}

// poll polls the token endpoint for device code dc as client (with its
// secret, or as a public client without one).
func (e *env) poll(dc, client, secret string) (int, map[string]any) {
	e.t.Helper()
	f := url.Values{"grant_type": {provider.GrantDeviceCode}, "device_code": {dc}}
	if secret == "" {
		f.Set("client_id", client)
	}
	resp, m := e.token(f, map[bool]string{true: client}[secret != ""], secret)
	return resp.StatusCode, m
}

// pollError polls and returns the error code (the test fails on tokens).
func (e *env) pollError(dc string) string {
	e.t.Helper()
	status, m := e.poll(dc, "tv", "")
	if status != http.StatusBadRequest {
		e.t.Fatalf("poll: %d %v, want an error", status, m)
	}
	return str(m, "error")
}

// submitForm posts the (first) form of page as a browser would, with its
// hidden fields and fields set.
func (b *browser) submitForm(resp *http.Response, page string, fields url.Values) (*http.Response, string) {
	b.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form at %s (status %d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	action, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		b.t.Fatal(err)
	}
	f := loginForm(page)
	for k, v := range fields {
		f[k] = v
	}
	return b.post(resp.Request.URL.ResolveReference(action).String(), f)
}

// enterCode opens page (the verification URI, maybe with the code) in b
// and submits typed; it signs alice in when the chain asks. It returns
// the page the browser ends on.
func (e *env) enterCode(b *browser, page, typed string) (*http.Response, string) {
	e.t.Helper()
	resp, body := b.get(page)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="user_code"`) {
		e.t.Fatalf("verification page: %d\n%s", resp.StatusCode, body)
	}
	resp, body = b.submitForm(resp, body, url.Values{"user_code": {typed}})
	if resp.StatusCode == http.StatusOK && strings.Contains(body, `name="password"`) {
		resp, body = b.submitLogin(resp, body, alicePassword)
	}
	return resp, body
}

// decide answers the allow page with decision.
func (e *env) decide(b *browser, resp *http.Response, page, decision string) (*http.Response, string) {
	e.t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
		e.t.Fatalf("not the allow page: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	return b.submitForm(resp, page, url.Values{"decision": {decision}})
}

var userCodeShape = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

func TestDeviceFlow(t *testing.T) {
	e, trail := newDeviceEnv(t)
	resp, da := e.postForm("/device_authorization", url.Values{"client_id": {"tv"}, "scope": {"openid profile bogus offline_access profile"}}, "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("device authorization: %d %v %v", resp.StatusCode, resp.Header, da)
	}
	dc, uc := str(da, "device_code"), str(da, "user_code")
	if len(dc) < 43 || !userCodeShape.MatchString(uc) || str(da, "verification_uri") != e.issuer+"/device" ||
		str(da, "verification_uri_complete") != e.issuer+"/device?user_code="+uc || da["expires_in"] != 600.0 || da["interval"] != 5.0 {
		t.Fatalf("device authorization response %v", da)
	}
	if got := e.pollError(dc); got != "authorization_pending" {
		t.Fatalf("first poll: %s", got)
	}

	b := e.browser()
	resp, page := e.enterCode(b, str(da, "verification_uri_complete"), uc)
	for _, want := range []string{"Allow Living Room TV on your device?", uc, "alice", "Your name and profile", "Sign you in with your account",
		"Keep access while you are not using it"} {
		if !strings.Contains(page, html.EscapeString(want)) {
			t.Errorf("allow page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "bogus") || strings.Contains(page, "<script") {
		t.Errorf("allow page shows an unknown scope or a script:\n%s", page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("allow page CSP %q", csp)
	}
	e.clock.Advance(5 * time.Second)
	if got := e.pollError(dc); got != "authorization_pending" {
		t.Fatalf("poll before the answer: %s", got)
	}
	resp, page = e.decide(b, resp, page, "allow")
	if resp.StatusCode != 200 || !strings.Contains(page, "Device connected") {
		t.Fatalf("after allow: %d\n%s", resp.StatusCode, page)
	}

	e.clock.Advance(5 * time.Second)
	status, tok := e.poll(dc, "tv", "")
	if status != 200 || str(tok, "token_type") != "Bearer" || str(tok, "access_token") == "" || str(tok, "refresh_token") == "" {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	if got := strings.Fields(str(tok, "scope")); !slices.Equal(got, []string{"openid", "profile", "offline_access"}) {
		t.Errorf("granted scopes %v", got)
	}
	_, claims := e.idTokenParts(str(tok, "id_token"), jose.RS256, "tv")
	if claims["sub"] != e.alice.Subject || claims["nonce"] != nil || claims["sid"] == nil || claims["acr"] != "1" ||
		claims["name"] != "Alice Example" || claims["email"] != nil || claims["at_hash"] == nil {
		t.Errorf("ID token claims %v", claims)
	}
	if resp, ui := e.userinfo(str(tok, "access_token")); resp.StatusCode != 200 || ui["sub"] != e.alice.Subject {
		t.Errorf("userinfo: %d %v", resp.StatusCode, ui)
	}
	rf := refreshForm(str(tok, "refresh_token"))
	rf.Set("client_id", "tv")
	if resp, rt := e.token(rf, "", ""); resp.StatusCode != 200 || str(rt, "access_token") == "" {
		t.Errorf("refresh: %d %v", resp.StatusCode, rt)
	}
	// The session knows the client, so its logout reaches the tokens.
	list, err := e.sessions.ListFor(context.Background(), e.alice.Subject)
	if err != nil || len(list) != 1 || !slices.Contains(list[0].Clients, "tv") {
		t.Fatalf("session clients: %v %v", list, err)
	}
	if trail.count(audit.DeviceAuthorized, `"reason":"allowed"`) != 1 {
		t.Errorf("no device_authorized audit line")
	}

	// Single use: a second redemption is refused and revokes the first's
	// tokens.
	if got := e.pollError(dc); got != "invalid_grant" {
		t.Fatalf("second redemption: %s", got)
	}
	if resp, _ := e.userinfo(str(tok, "access_token")); resp.StatusCode != 401 {
		t.Errorf("access token after a replay: %d", resp.StatusCode)
	}
	if trail.count(audit.CodeReplayed, `"reason":"device code"`) != 1 {
		t.Errorf("replay not audited")
	}
	// The user code is spent too.
	resp, page = e.enterCode(b, e.issuer+"/device", uc)
	if resp.StatusCode != 400 || !strings.Contains(page, "not valid, has expired or was already used") {
		t.Errorf("spent user code: %d\n%s", resp.StatusCode, page)
	}
}

func TestDevicePollingSlowDown(t *testing.T) {
	e, _ := newDeviceEnv(t)
	dc := str(e.startDevice("openid"), "device_code")
	steps := []struct {
		wait time.Duration
		want string
	}{
		{0, "authorization_pending"},
		{0, "slow_down"},                            // at once: interval 5 → 10
		{5 * time.Second, "slow_down"},              // 5s is now too soon: 10 → 15
		{15 * time.Second, "authorization_pending"}, // waited the interval
		{12 * time.Second, "authorization_pending"}, // within the jitter allowance (a fifth)
		{11 * time.Second, "slow_down"},
		{20 * time.Second, "authorization_pending"},
	}
	for i, s := range steps {
		e.clock.Advance(s.wait)
		if got := e.pollError(dc); got != s.want {
			t.Fatalf("step %d (after %v): %s, want %s", i, s.wait, got, s.want)
		}
	}
}

func TestDeviceDeniedAndExpired(t *testing.T) {
	e, trail := newDeviceEnv(t)
	da := e.startDevice("openid")
	b := e.browser()
	resp, page := e.enterCode(b, e.issuer+"/device", str(da, "user_code"))
	resp, page = e.decide(b, resp, page, "deny")
	if resp.StatusCode != 200 || !strings.Contains(page, "Device not connected") {
		t.Fatalf("after deny: %d\n%s", resp.StatusCode, page)
	}
	for range 2 {
		if got := e.pollError(str(da, "device_code")); got != "access_denied" {
			t.Fatalf("denied poll: %s", got)
		}
		e.clock.Advance(5 * time.Second)
	}
	if trail.count(audit.DeviceAuthorized, `"reason":"denied"`) != 1 {
		t.Error("denial not audited")
	}

	// Expired: the device is told, the person too.
	pending, allowed := e.startDevice("openid"), e.startDevice("openid")
	resp, page = e.enterCode(b, e.issuer+"/device", str(allowed, "user_code"))
	e.decide(b, resp, page, "allow")
	e.clock.Advance(10*time.Minute + time.Second)
	for _, da := range []map[string]any{pending, allowed} {
		if got := e.pollError(str(da, "device_code")); got != "expired_token" {
			t.Errorf("expired poll: %s", got)
		}
	}
	resp, page = e.enterCode(b, str(pending, "verification_uri_complete"), str(pending, "user_code"))
	if resp.StatusCode != 400 || !strings.Contains(page, "has expired") {
		t.Errorf("expired user code typed: %d\n%s", resp.StatusCode, page)
	}
	// Long after, the record is gone: an invalid grant.
	e.clock.Advance(11 * time.Minute)
	if got := e.pollError(str(pending, "device_code")); got != "invalid_grant" {
		t.Errorf("long-expired poll: %s", got)
	}
}

func TestDeviceCodeBoundToItsClient(t *testing.T) {
	e, trail := newDeviceEnv(t)
	resp, da := e.postForm("/device_authorization", url.Values{"scope": {"openid email profile offline_access"}}, "cli", cliSecret)
	if resp.StatusCode != 200 {
		t.Fatalf("cli device authorization: %d %v", resp.StatusCode, da)
	}
	dc := str(da, "device_code")
	// Another client polling the code, pending or allowed: refused,
	// audited, and the code is still the owner's.
	if status, m := e.poll(dc, "tv", ""); status != 400 || str(m, "error") != "invalid_grant" {
		t.Fatalf("tv polling cli's pending code: %d %v", status, m)
	}
	b := e.browser()
	resp, page := e.enterCode(b, e.issuer+"/device", str(da, "user_code"))
	e.decide(b, resp, page, "allow")
	if status, m := e.poll(dc, "tv", ""); status != 400 || str(m, "error") != "invalid_grant" {
		t.Fatalf("tv polling cli's allowed code: %d %v", status, m)
	}
	if trail.count(audit.TokenMisuse, `"client":"tv"`) != 2 {
		t.Error("misuse not audited")
	}
	status, tok := e.poll(dc, "cli", cliSecret)
	if status != 200 || str(tok, "refresh_token") != "" || str(tok, "id_token") == "" {
		t.Fatalf("cli redeem: %d %v", status, tok)
	}
	// cli may have email only (openid always), and cannot refresh.
	if got := strings.Fields(str(tok, "scope")); !slices.Equal(got, []string{"openid", "email"}) {
		t.Errorf("cli scopes %v", got)
	}
	if status, m := e.poll(dc, "cli", "wrong"); status != 401 || str(m, "error") != "invalid_client" {
		t.Errorf("wrong secret: %d %v", status, m)
	}
}

func TestUserCodeSpellings(t *testing.T) {
	e, _ := newDeviceEnv(t)
	b := e.browser()
	for i, spell := range []func(string) string{
		strings.ToLower,
		func(s string) string { return strings.ReplaceAll(s, "-", "") },
		func(s string) string { return " " + strings.ToLower(strings.ReplaceAll(s, "-", " ")) + " " },
		func(s string) string { return strings.Join(strings.Split(strings.ReplaceAll(s, "-", ""), ""), "-") },
	} {
		da := e.startDevice("openid")
		typed := spell(str(da, "user_code"))
		resp, page := e.enterCode(b, e.issuer+"/device", typed)
		if resp.StatusCode != 200 || !strings.Contains(page, str(da, "user_code")) || !strings.Contains(page, `value="allow"`) {
			t.Fatalf("spelling %d %q: %d\n%s", i, typed, resp.StatusCode, page)
		}
	}
	// The prefilled form shows the code as the device does.
	da := e.startDevice("openid")
	lower := strings.ToLower(strings.ReplaceAll(str(da, "user_code"), "-", ""))
	if _, page := b.get(e.issuer + "/device?user_code=" + lower); !strings.Contains(page, `value="`+str(da, "user_code")+`"`) {
		t.Errorf("prefill of %q:\n%s", lower, page)
	}
	for _, typed := range []string{"BCDF-GHJ", "HELLO-WORLD", "BCDF-GHJ1", "ＢCDF-GHJK", strings.Repeat("B", 70)} {
		resp, page := e.enterCode(b, e.issuer+"/device", typed)
		if resp.StatusCode != 400 || !strings.Contains(page, "not a device code") {
			t.Errorf("malformed %q: %d\n%s", typed, resp.StatusCode, page)
		}
	}
}

// Polls racing for one allowed device code: at most one gets tokens, and
// when another poll found the code used, those tokens are revoked (no
// two working grants from one code).
func TestDeviceCodeRace(t *testing.T) {
	e, _ := newDeviceEnv(t)
	for round := range 3 {
		_, da := e.postForm("/device_authorization", url.Values{"scope": {"openid email"}}, "cli", cliSecret)
		b := e.browser()
		resp, page := e.enterCode(b, e.issuer+"/device", str(da, "user_code"))
		e.decide(b, resp, page, "allow")
		form := url.Values{"grant_type": {provider.GrantDeviceCode}, "device_code": {str(da, "device_code")}}
		results := make([]tokenResult, 8)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() { results[i] = e.postToken(form, "cli", cliSecret) })
		}
		wg.Wait()
		var won []string
		refused := 0
		for _, r := range results {
			switch {
			case r.err != nil:
				t.Fatal(r.err)
			case r.status == 200:
				won = append(won, str(r.body, "access_token"))
			case r.status == 400 && str(r.body, "error") == "invalid_grant":
				refused++
			default:
				t.Fatalf("round %d: %d %v", round, r.status, r.body)
			}
		}
		if len(won) > 1 || len(won)+refused != len(results) {
			t.Fatalf("round %d: %d polls got tokens", round, len(won))
		}
		if len(won) == 1 && refused > 0 {
			if resp, _ := e.userinfo(won[0]); resp.StatusCode != 401 {
				t.Fatalf("round %d: the winner's token survives a concurrent replay: %d", round, resp.StatusCode)
			}
		}
	}
}
