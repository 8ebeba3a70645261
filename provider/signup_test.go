package provider_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/activation"
	_ "github.com/gatehouse-idp/gatehouse/chain/registration"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// A client's authorization request carries a sign-up through: the form,
// the activation mail and its link, and the client gets an ID token for
// the new account with the passes of this sign-in.
func TestSignUpThroughTheProvider(t *testing.T) {
	outbox := &chaintest.Outbox{}
	cfg := chain.Config{Modules: []chain.ModuleConfig{
		{Name: "Sign in", Kind: "password", Levels: []string{"1"}},
		{Name: "Create an account", Kind: "registration", Levels: []string{"1"}},
		{Name: "Activate", Kind: "activation", Levels: []string{"1"}, After: []string{"Sign in", "Create an account"}},
	}}
	e := newEnvWith(t, envSetup{alg: "RS256", chain: &cfg, chainOpts: func(o *chain.Options) { o.Mailer = outbox }})
	b := e.browser()

	resp, page := b.get(e.authURL(authParams("conf")))
	resp, page = b.choose(resp, page, "Create an account")
	resp, page = b.submitForm(resp, page, url.Values{"username": {"newbie"}, "email": {"newbie@example.org"}, "name": {"New Bie"},
		"password": {"violet tractor wanders 93 laps"}, "password_confirm": {"violet tractor wanders 93 laps"}})
	if !strings.Contains(page, "Activate your account") {
		t.Fatalf("after signing up (%d):\n%s", resp.StatusCode, page)
	}
	// Before the link nothing reaches the client.
	if r, _ := b.get(e.authURL(authParams("conf"))); r.StatusCode == http.StatusFound {
		t.Fatal("a new authorization went through before activation")
	}
	resp, page = b.submitForm(resp, page, nil)
	if !strings.Contains(page, "Check your mail") {
		t.Fatalf("after sending:\n%s", page)
	}
	m, _ := outbox.Last()
	resp, page = b.get(m.Data["link"].(string))
	resp, page = b.submitForm(resp, page, nil)
	got := callbackQuery(t, resp, page)
	tr, tok := e.token(codeForm(got.Get("code")), "conf", confSecret)
	if tr.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", tr.StatusCode, tok)
	}
	u, err := e.users.Lookup(context.Background(), "newbie")
	if err != nil || u.Inactive || !u.EmailVerified {
		t.Fatalf("account %+v %v", u, err)
	}
	_, claims := e.idTokenParts(tok["id_token"].(string), jose.RS256, "conf")
	amr, _ := json.Marshal(claims["amr"])
	if claims["sub"] != u.Subject || claims["acr"] != "1" || string(amr) != `["pwd","otp","mfa"]` ||
		claims["email"] != "newbie@example.org" || claims["email_verified"] != true || claims["name"] != "New Bie" {
		t.Fatalf("id token %v", claims)
	}
}

// choose opens the choice named name on page (a name with spaces, which
// the page's link escapes).
func (b *browser) choose(resp *http.Response, page, name string) (*http.Response, string) {
	b.t.Helper()
	for _, m := range choiceLink.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[2]) == name {
			u, _ := url.Parse(html.UnescapeString(m[1]))
			return b.get(resp.Request.URL.ResolveReference(u).String())
		}
	}
	b.t.Fatalf("no choice %q at %s:\n%s", name, resp.Request.URL, page)
	return nil, ""
}
