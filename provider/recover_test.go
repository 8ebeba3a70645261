package provider_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/magic_link"
	_ "github.com/gatehouse-idp/gatehouse/chain/password_reset"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// recoverEnv is the provider with a chain of a password form, "Forgot
// password?" and "Email me a sign-in link".
func recoverEnv(t *testing.T) (*env, *chaintest.Outbox) {
	outbox := &chaintest.Outbox{}
	cfg := chain.Config{Modules: []chain.ModuleConfig{
		{Name: "Password", Kind: "password", Levels: []string{"1"}},
		{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}},
		{Name: "Link", Kind: "magic_link", Levels: []string{"1"}},
	}}
	return newEnvWith(t, envSetup{alg: "RS256", path: "/idp", chain: &cfg, chainOpts: func(o *chain.Options) { o.Mailer = outbox }}), outbox
}

// mailedLink is the link of the last mail, and its code.
func mailedLink(t *testing.T, o *chaintest.Outbox) (string, string) {
	t.Helper()
	m, ok := o.Last()
	if !ok {
		t.Fatal("nothing mailed")
	}
	code, _ := m.Data["code"].(string)
	return m.Data["link"].(string), code
}

// idTokenOf redeems the code the client got and returns the ID token's
// claims and the access token.
func (e *env) idTokenOf(got url.Values) (map[string]any, string) {
	e.t.Helper()
	tr, tok := e.token(codeForm(got.Get("code")), "conf", confSecret)
	if tr.StatusCode != http.StatusOK {
		e.t.Fatalf("token: %d %v", tr.StatusCode, tok)
	}
	_, claims := e.idTokenParts(tok["id_token"].(string), jose.RS256, "conf")
	return claims, tok["access_token"].(string)
}

func amrJSON(c map[string]any) string {
	b, _ := json.Marshal(c["amr"])
	return string(b)
}

// Password forgotten from an OIDC client: the mail, the link, a new
// password, and the client gets an ID token for alice with amr otp; the
// session alice had elsewhere ends with its tokens.
func TestPasswordResetThroughTheProvider(t *testing.T) {
	e, outbox := recoverEnv(t)
	elsewhere := e.browser()
	claims, oldAccess := e.idTokenOf(e.login(elsewhere, authParams("conf")))
	if amrJSON(claims) != `["pwd"]` {
		t.Fatalf("first sign-in amr %s", amrJSON(claims))
	}

	b := e.browser()
	resp, page := b.get(e.authURL(authParams("conf")))
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("the sign-in page:\n%s", page)
	}
	resp, page = b.follow(resp, page, "Forgot password?")
	resp, page = b.submitForm(resp, page, url.Values{"login": {"alice@example.com"}})
	if !strings.Contains(page, "Check your mail") {
		t.Fatalf("after asking:\n%s", page)
	}
	link, _ := mailedLink(t, outbox)
	resp, page = b.get(link)
	resp, page = b.submitForm(resp, page, nil)
	if !strings.Contains(page, "Choose a new password") {
		t.Fatalf("after the link (%s):\n%s", resp.Request.URL, page)
	}
	resp, page = b.submitForm(resp, page, url.Values{"password": {"brand new password"}, "confirm": {"brand new password"}})
	got := callbackQuery(t, resp, page)
	claims, access := e.idTokenOf(got)
	if claims["sub"] != e.alice.Subject || claims["acr"] != "1" || amrJSON(claims) != `["otp"]` {
		t.Fatalf("id token: sub %v acr %v amr %s", claims["sub"], claims["acr"], amrJSON(claims))
	}
	if r, _ := e.userinfo(access); r.StatusCode != http.StatusOK {
		t.Fatalf("the new session's token: %d", r.StatusCode)
	}
	// The session elsewhere ended, and its tokens with it.
	if r, _ := e.userinfo(oldAccess); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the other session's token after the reset: %d", r.StatusCode)
	}
	q := authParams("conf")
	q.Set("prompt", "none")
	resp, page = elsewhere.get(e.authURL(q))
	if got := callbackQuery(t, resp, page); got.Get("error") != "login_required" {
		t.Fatalf("the other browser, prompt=none: %v", got)
	}
	// The old password is gone, the new one signs in; the link is spent.
	nb := e.browser()
	resp, page = nb.get(e.authURL(authParams("conf")))
	if r, _ := nb.submitLogin(resp, page, alicePassword); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old password: %d", r.StatusCode)
	}
	resp, page = nb.get(e.authURL(authParams("conf")))
	resp, page = nb.submitLogin(resp, page, "brand new password")
	if claims, _ := e.idTokenOf(callbackQuery(t, resp, page)); amrJSON(claims) != `["pwd"]` {
		t.Fatalf("the new password: amr %s", amrJSON(claims))
	}
	if resp, _ := b.get(link); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the link again: %d", resp.StatusCode)
	}
}

// A magic link's code, typed in the browser that asked, signs in at the
// client with amr otp.
func TestMagicLinkCodeThroughTheProvider(t *testing.T) {
	e, outbox := recoverEnv(t)
	b := e.browser()
	resp, page := b.get(e.authURL(authParams("conf")))
	resp, page = b.follow(resp, page, "Email me a sign-in link")
	resp, page = b.submitForm(resp, page, url.Values{"login": {"alice"}})
	_, code := mailedLink(t, outbox)
	if m, _ := outbox.Last(); m.Data["client_name"] != "Conf App" {
		t.Fatalf("mail %+v", m)
	}
	resp, page = b.submitForm(resp, page, url.Values{"mail_code": {code}})
	claims, _ := e.idTokenOf(callbackQuery(t, resp, page))
	if claims["sub"] != e.alice.Subject || amrJSON(claims) != `["otp"]` || claims["email_verified"] != true {
		t.Fatalf("id token %v", claims)
	}
}
