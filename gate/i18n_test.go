package gate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/browser"
	"github.com/gatehouse-idp/gatehouse/logout"
)

// The gate's own pages are in the browser's language.
func TestGatePagesInBrowsersLanguage(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	cookies, err := browser.New(ctx, st, browser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Not bound to its site yet: the "starting" page.
	g, err := New(ctx, Config{Issuer: "http://idp.localhost", ClientID: "c", Store: st, Cookies: cookies,
		Queue: logout.NewQueue(logout.QueueConfig{Store: st, Issuer: "http://idp.localhost", Signer: nopSigner{}})})
	if err != nil {
		t.Fatal(err)
	}
	for lang, want := range map[string]string{"es-ES,es;q=0.9": "Este sitio se está iniciando.", "": "This site is starting.", "nl": "Deze site start op."} {
		r := httptest.NewRequest(http.MethodGet, "http://app.localhost/", nil)
		r.Header.Set("Accept-Language", lang)
		w := httptest.NewRecorder()
		if _, handled := g.Check(w, r); !handled || w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), want) {
			t.Errorf("Accept-Language %q: %d, want %q in\n%s", lang, w.Code, want, w.Body)
		}
	}
}
