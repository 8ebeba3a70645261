package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/users"
)

// tpParams is a code request of the third-party client tp.
func tpParams(scope string) url.Values {
	q := authParams("tp")
	q.Set("scope", scope)
	return q
}

var consentBox = regexp.MustCompile(`<input type="checkbox" name="grant" value="([^"]+)" checked( disabled)? id="[^"]+">`)

// consentPage is what the consent page offers: item -> required.
func consentPage(t *testing.T, page string) map[string]bool {
	t.Helper()
	if !strings.Contains(page, `action="`) || !strings.Contains(page, "Allow access?") {
		t.Fatalf("not the consent page:\n%s", page)
	}
	items := map[string]bool{}
	for _, m := range consentBox.FindAllStringSubmatch(page, -1) {
		items[m[1]] = m[2] != ""
	}
	return items
}

// toConsent runs a request of b up to the consent page (signing in if
// asked) and returns the page.
func (e *env) toConsent(b *browser, q url.Values) (*http.Response, string) {
	e.t.Helper()
	resp, page := b.get(e.authURL(q))
	if resp.StatusCode == http.StatusOK && strings.Contains(page, `name="password"`) {
		resp, page = b.submitLogin(resp, page, alicePassword)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("want the consent page, got %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return resp, page
}

// answer posts the consent page in b with the given items ticked.
func (e *env) answer(b *browser, page, action string, ticked ...string) (*http.Response, string) {
	e.t.Helper()
	f := loginForm(page)
	f.Set("action", action)
	for _, it := range ticked {
		f.Add("grant", it)
	}
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("no form on the page:\n%s", page)
	}
	return b.post(e.absolute(m[1]), f)
}

func (e *env) absolute(path string) string {
	u, _ := url.Parse(e.issuer)
	return u.Scheme + "://" + u.Host + path
}

func (e *env) redeem(client, secret string, cb url.Values) map[string]any {
	e.t.Helper()
	resp, tok := e.token(codeForm(cb.Get("code")), client, secret)
	if resp.StatusCode != 200 {
		e.t.Fatalf("code grant: %d %v (callback %v)", resp.StatusCode, tok, cb)
	}
	return tok
}

func TestConsentLetsThePersonUntickScopes(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	_, page := e.toConsent(b, tpParams("openid profile email~r phone"))
	items := consentPage(t, page)
	want := map[string]bool{"profile": false, "email": true, "phone": false}
	if len(items) != len(want) {
		t.Fatalf("consent items %v, want %v", items, want)
	}
	for k, req := range want {
		if r, ok := items[k]; !ok || r != req {
			t.Errorf("item %s: present %v required %v, want required %v", k, ok, r, req)
		}
	}
	if !strings.Contains(page, "Third Party") {
		t.Error("the consent page does not name the client")
	}
	// Keep profile only; email is required (and a disabled box is not
	// sent), phone unticked; a forged item is ignored.
	resp, body := e.answer(b, page, "allow", "profile", "groups")
	cb := callbackQuery(t, resp, body)
	tok := e.redeem("tp", "tp-secret", cb)
	if got := strings.Fields(str(tok, "scope")); !slices.Equal(got, []string{"openid", "profile", "email"}) {
		t.Errorf("granted scope %v", got)
	}
	_, claims := e.idTokenParts(str(tok, "id_token"), jose.RS256, "tp")
	if claims["email"] != "alice@example.com" || claims["preferred_username"] != "alice" || claims["groups"] != nil {
		t.Errorf("ID token claims %v", claims)
	}
	_, info := e.userinfo(str(tok, "access_token"))
	if info["email"] == nil || info["phone_number"] != nil || info["groups"] != nil {
		t.Errorf("userinfo %v", info)
	}

	// Remembered: the same request goes straight through, with the same
	// answer.
	cb = e.login(b, tpParams("openid profile email~r phone"))
	if got := str(e.redeem("tp", "tp-secret", cb), "scope"); got != "openid profile email" {
		t.Errorf("remembered consent granted %q", got)
	}
	// A new scope asks again; prompt=consent always asks.
	_, page = e.toConsent(b, tpParams("openid email address"))
	if items := consentPage(t, page); len(items) != 2 {
		t.Errorf("new scope: items %v", items)
	}
	_, page = e.toConsent(b, with(tpParams("openid profile"), "prompt", "consent"))
	consentPage(t, page)
	// Making an earlier refused scope required asks again.
	_, page = e.toConsent(b, tpParams("openid phone~r"))
	if items := consentPage(t, page); !items["phone"] {
		t.Errorf("required phone: %v", items)
	}
}

func TestConsentRefusals(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.login(b, authParams("conf")) // signed in, never asked for tp
	// prompt=none cannot ask.
	cb := e.login(b, with(tpParams("openid email"), "prompt", "none"))
	if cb.Get("error") != "consent_required" || cb.Get("state") != "st-1" || cb.Get("iss") != e.issuer {
		t.Errorf("prompt=none without consent: %v", cb)
	}
	// Deny.
	_, page := e.toConsent(b, tpParams("openid email"))
	resp, body := e.answer(b, page, "deny")
	if cb := callbackQuery(t, resp, body); cb.Get("error") != "access_denied" || cb.Get("code") != "" {
		t.Errorf("denied: %v", cb)
	}
	// The answer is single use, and the denial was not remembered.
	if resp, _ := e.answer(b, page, "allow", "email"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the same consent form twice: %d", resp.StatusCode)
	}
	_, page = e.toConsent(b, tpParams("openid email"))
	// Without the CSRF token, from another browser, or by GET: refused.
	f := loginForm(page)
	f.Set("action", "allow")
	f.Del("csrf")
	if resp, _ := b.post(e.absolute(formAction.FindStringSubmatch(page)[1]), f); resp.StatusCode != http.StatusForbidden {
		t.Errorf("no csrf: %d", resp.StatusCode)
	}
	other := e.browser()
	e.login(other, authParams("conf"))
	if resp, _ := e.answer(other, page, "allow", "email"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another browser: %d", resp.StatusCode)
	}
	if resp, _ := b.get(e.issuer + "/consent"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET consent: %d", resp.StatusCode)
	}
	// Signed out between the page and the answer.
	s, err := e.sessions.ListFor(context.Background(), e.alice.Subject)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range s {
		if err := e.logout.End(context.Background(), x.ID, logout.ByAdmin); err != nil {
			t.Fatal(err)
		}
	}
	resp, body = e.answer(b, page, "allow", "email")
	if cb := callbackQuery(t, resp, body); cb.Get("error") != "login_required" {
		t.Errorf("answer after sign-out: %v", cb)
	}
}

func TestOfflineAccessNeedsConsentAndOutlivesTheSession(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	b := e.browser()
	_, page := e.toConsent(b, tpParams("openid offline_access"))
	if !strings.Contains(page, "while you are away") {
		t.Error("the consent page does not say offline access outlives the session")
	}
	resp, body := e.answer(b, page, "allow", "offline_access")
	tok := e.redeem("tp", "tp-secret", callbackQuery(t, resp, body))
	if str(tok, "scope") != "openid offline_access" || str(tok, "refresh_token") == "" {
		t.Fatalf("offline grant: %v", tok)
	}
	_, claims := e.idTokenParts(str(tok, "id_token"), jose.RS256, "tp")
	if err := e.logout.End(ctx, claims["sid"].(string), logout.UserLogout); err != nil {
		t.Fatal(err)
	}
	status, next := e.refresh(str(tok, "refresh_token"), "tp", "tp-secret")
	if status != 200 {
		t.Fatalf("offline refresh after logout: %d %v", status, next)
	}
	if resp, _ := e.userinfo(str(next, "access_token")); resp.StatusCode != 200 {
		t.Errorf("offline access token after logout: %d", resp.StatusCode)
	}
	// Withdrawn on the account page: the refresh token and its access
	// tokens die, and the next request asks again.
	b2 := e.browser()
	e.login(b2, authParams("conf"))
	_, acct := b2.get(e.issuer + "/account")
	if !strings.Contains(acct, "Third Party") || !strings.Contains(acct, "while you are away") {
		t.Fatalf("account page does not list the app:\n%s", acct)
	}
	f := loginForm(acct)
	f.Set("action", "withdraw")
	f.Set("client", "tp")
	if resp, _ := b2.post(e.issuer+"/account", f); resp.StatusCode != 200 {
		t.Fatalf("withdraw: %d", resp.StatusCode)
	}
	if status, out := e.refresh(str(next, "refresh_token"), "tp", "tp-secret"); status != 400 {
		t.Errorf("refresh after withdrawal: %d %v", status, out)
	}
	if resp, _ := e.userinfo(str(next, "access_token")); resp.StatusCode != 401 {
		t.Errorf("access token after withdrawal: %d", resp.StatusCode)
	}
	_, page = e.toConsent(b2, tpParams("openid offline_access"))
	consentPage(t, page)

	// Unticked: no offline grant, the refresh token dies with the session.
	resp, body = e.answer(b2, page, "allow")
	tok = e.redeem("tp", "tp-secret", callbackQuery(t, resp, body))
	if str(tok, "scope") != "openid" {
		t.Errorf("unticked offline_access granted %q", str(tok, "scope"))
	}
	// offline_access without a code to redeem is dropped (OIDC Core §11).
	q := with(tpParams("openid offline_access"), "response_type", "id_token", "prompt", "consent")
	_, page = e.toConsent(b2, q)
	if items := consentPage(t, page); len(items) != 0 {
		t.Errorf("offline_access offered for an implicit request: %v", items)
	}
}

func TestClaimsParameterIsConsentedAndReleased(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if _, err := e.users.Update(ctx, e.alice.Subject, func(u *users.User) error {
		u.PhoneNumber, u.Locale = "+1 555 0100", "en-GB"
		u.Address = &users.Address{Locality: "Springfield", Country: "US"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	q := tpParams("openid")
	q.Set("claims", `{"userinfo":{"phone_number":null,"address":{"essential":true}},"id_token":{"locale":null,"acr":null,"nonsense":null}}`)
	_, page := e.toConsent(b, q)
	items := consentPage(t, page)
	for _, k := range []string{"claim:phone_number", "claim:address", "claim:locale"} {
		if required, ok := items[k]; !ok || required {
			t.Errorf("claims on the consent page: %v (want %s, optional)", items, k)
		}
	}
	if len(items) != 3 {
		t.Errorf("claims on the consent page: %v (acr and unknown claims are not asked)", items)
	}
	resp, body := e.answer(b, page, "allow", "claim:address", "claim:locale")
	tok := e.redeem("tp", "tp-secret", callbackQuery(t, resp, body))
	_, claims := e.idTokenParts(str(tok, "id_token"), jose.RS256, "tp")
	if claims["locale"] != "en-GB" || claims["address"] != nil || claims["phone_number"] != nil {
		t.Errorf("ID token %v", claims)
	}
	_, info := e.userinfo(str(tok, "access_token"))
	addr, _ := info["address"].(map[string]any)
	if addr["locality"] != "Springfield" || info["phone_number"] != nil || info["locale"] != nil {
		t.Errorf("userinfo %v", info)
	}
	// A claims parameter that is not JSON is an error for the client.
	q.Set("claims", `{"userinfo":`)
	if cb := e.login(b, q); cb.Get("error") != "invalid_request" {
		t.Errorf("bad claims: %v", cb)
	}
}

// loginAllowing signs alice in for q in a fresh browser and allows
// everything the consent page asks for; it returns the callback query.
func (e *env) loginAllowing(q url.Values) url.Values {
	e.t.Helper()
	b := e.browser()
	resp, page := e.toConsent(b, q)
	var all []string
	for it := range consentPage(e.t, page) {
		all = append(all, it)
	}
	resp, page = e.answer(b, page, "allow", all...)
	return callbackQuery(e.t, resp, page)
}

// A client's registered default_max_age stands in for max_age.
func TestClientDefaultMaxAge(t *testing.T) {
	e := newEnv(t, "")
	if err := e.clients.SetStatic(provider.Client{ID: "strict", Secret: "strict-secret", RedirectURIs: []string{redirectURI},
		ClientSettings: provider.ClientSettings{FirstParty: true, DefaultMaxAge: 60}}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	e.login(b, authParams("conf"))
	e.clock.Advance(2 * time.Minute)
	// conf has no default: SSO. strict wants a sign-in at most a minute old.
	if resp, _ := b.get(e.authURL(authParams("conf"))); resp.StatusCode != http.StatusFound {
		t.Fatalf("conf after two minutes: %d", resp.StatusCode)
	}
	if resp, page := b.get(e.authURL(authParams("strict"))); resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("strict after two minutes: %d (want the login page)", resp.StatusCode)
	}
	// An explicit max_age wins over the default.
	if resp, _ := b.get(e.authURL(with(authParams("strict"), "max_age", "3600"))); resp.StatusCode != http.StatusFound {
		t.Fatalf("strict with max_age=3600: %d", resp.StatusCode)
	}
}
