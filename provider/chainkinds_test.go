package provider_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// A module kind the engine and the provider were not written for — one
// folder (internal/chaintest) and one registration each — carries a
// whole authorization: a remote provider as the first step (a
// RedirectModule), a mailed link as the second (a MailModule), and the
// client gets its code and an ID token that says so.
func TestNewModuleKindsThroughTheProvider(t *testing.T) {
	idp := chaintest.NewIdP()
	defer idp.Close()
	outbox := &chaintest.Outbox{}
	cfg := chain.Config{Modules: []chain.ModuleConfig{
		{Name: "Password", Kind: "password", Levels: []string{"1"}},
		{Name: "Remote", Kind: "test-remote", Levels: []string{"1"}, Settings: json.RawMessage(fmt.Sprintf(`{"url": %q, "link": true}`, idp.URL))},
		{Name: "Email", Kind: "test-mail", Levels: []string{"2"}, After: []string{"Password", "Remote"}, ShowOnlyWhenNeeded: true},
	}}
	e := newEnvWith(t, envSetup{alg: "RS256", path: "/idp", chain: &cfg, chainOpts: func(o *chain.Options) { o.Mailer = outbox }})
	idp.SignIn(chaintest.Claims{Sub: "remote-7", Email: "alice@example.com"})
	b := e.browser()

	q := authParams("conf")
	q.Set("acr_values", "2")
	resp, page := b.get(e.authURL(q))
	resp, page = b.follow(resp, page, "Remote")
	// The button leaves for the remote provider, which comes back.
	resp, page = b.submitForm(resp, page, nil)
	if !strings.Contains(page, `name="module" value="Email"`) || !strings.Contains(page, `name="step" value="send"`) || strings.Contains(page, `name="email"`) {
		t.Fatalf("after the remote provider (%s):\n%s", resp.Request.URL, page)
	}
	// The second step mails the identified user without asking.
	resp, page = b.submitForm(resp, page, nil)
	if !strings.Contains(page, "Check your mail") {
		t.Fatalf("after sending:\n%s", page)
	}
	m, ok := outbox.Last()
	if !ok || m.To != "alice@example.com" {
		t.Fatalf("mail %+v", m)
	}
	link := m.Data["url"].(string)
	if !strings.HasPrefix(link, e.issuer+"/login/m/Email/mail?t=") {
		t.Fatalf("link %s", link)
	}
	resp, page = b.get(link)
	resp, page = b.submitForm(resp, page, nil)
	got := callbackQuery(t, resp, page)
	if got.Get("state") != "st-1" || got.Get("code") == "" {
		t.Fatalf("client got %v", got)
	}
	tr, tok := e.token(codeForm(got.Get("code")), "conf", confSecret)
	if tr.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", tr.StatusCode, tok)
	}
	_, claims := e.idTokenParts(tok["id_token"].(string), jose.RS256, "conf")
	amr, _ := json.Marshal(claims["amr"])
	if claims["sub"] != e.alice.Subject || claims["acr"] != "2" || string(amr) != `["pwd","otp","mfa"]` {
		t.Fatalf("id token: sub %v acr %v amr %s", claims["sub"], claims["acr"], amr)
	}
	// The link was for one use.
	resp, page = b.get(link)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("link again: %d", resp.StatusCode)
	}
}

var choiceLink = regexp.MustCompile(`<a (?:class="button" )?href="([^"]+)">([^<]+)</a>`)

// follow opens the link named name on page.
func (b *browser) follow(resp *http.Response, page, name string) (*http.Response, string) {
	b.t.Helper()
	for _, m := range choiceLink.FindAllStringSubmatch(page, -1) {
		if m[2] == name {
			u, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
			return b.get(resp.Request.URL.ResolveReference(u).String())
		}
	}
	b.t.Fatalf("no link %q at %s:\n%s", name, resp.Request.URL, page)
	return nil, ""
}
