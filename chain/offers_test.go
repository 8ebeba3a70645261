package chain_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/registration"
)

// Offers under the sign-in form obey disabled and show_only_when_needed
// like any module: a disabled one is never offered nor reachable by its
// name, one shown only when needed appears once a request needs its
// level.
func TestOffersDisabledAndWhenNeeded(t *testing.T) {
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Reset", Kind: "password_reset", Levels: []string{"1"}, Disabled: true},
		{Name: "Link", Kind: "magic_link", Levels: []string{"2"}, ShowOnlyWhenNeeded: true},
		{Name: "Join", Kind: "registration", Levels: []string{"1"}},
	}, nil)
	b := c.client()
	_, page := get(t, b, c.srv.URL+"/start")
	if !strings.Contains(page, `name="password"`) || !strings.Contains(page, ">Create an account</a>") ||
		strings.Contains(page, "Forgot password?") || strings.Contains(page, "Email me a sign-in link") {
		t.Fatalf("the start page offers otherwise:\n%s", page)
	}
	// The disabled module and the hidden one cannot be opened or posted
	// to by name.
	attempt := form(page).Get("attempt")
	for _, name := range []string{"Reset", "Link"} {
		if st, _ := get(t, b, c.srv.URL+"/login?attempt="+attempt+"&module="+name); st != http.StatusBadRequest {
			t.Errorf("%s opened by name: %d", name, st)
		}
		if st, _ := post(t, b, c.srv.URL+"/login", form(page, "module", name, "step", "send", "login", "alice")); st != http.StatusBadRequest {
			t.Errorf("%s posted to by name: %d", name, st)
		}
	}
	if n := len(c.outbox.Sent()); n != 0 {
		t.Fatalf("%d mails sent", n)
	}
	// A request for level 2, which only the sign-in link reaches, goes
	// to it.
	_, page = get(t, c.client(), c.srv.URL+"/start?acr=2")
	if form(page).Get("module") != "Link" || !strings.Contains(page, `name="login"`) {
		t.Fatalf("acr 2 offers otherwise:\n%s", page)
	}
}
