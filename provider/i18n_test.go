package provider_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/web"
)

// acceptLanguage sends a browser's language preferences with every
// request, as a browser set to that language does.
type acceptLanguage struct {
	lang string
	rt   http.RoundTripper
}

func (a acceptLanguage) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Language", a.lang)
	return a.rt.RoundTrip(r)
}

func (e *env) browserIn(lang string) *browser {
	b := e.browser()
	b.c.Transport = acceptLanguage{lang: lang, rt: http.DefaultTransport}
	return b
}

var htmlLang = regexp.MustCompile(`<html lang="([^"]+)" dir="(ltr|rtl)">`)

func pageLang(t *testing.T, page string) string {
	t.Helper()
	m := htmlLang.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no <html lang dir>:\n%s", page)
	}
	return m[1]
}

func wantIn(t *testing.T, what, page, lang string, texts ...string) {
	t.Helper()
	if got := pageLang(t, page); got != lang {
		t.Fatalf("%s: lang %q, want %q:\n%s", what, got, lang, page)
	}
	for _, s := range texts {
		if !strings.Contains(page, s) {
			t.Fatalf("%s: missing %q:\n%s", what, s, page)
		}
	}
}

// The main sign-in flow in German, by a browser set to German: every
// page is German and no text of it is left untranslated (web.Gaps).
func TestSignInFlowInGerman(t *testing.T) {
	e := newEnv(t, "RS256")
	web.Gaps()
	b := e.browserIn("de-DE,de;q=0.9,en;q=0.5")
	resp, page := b.get(e.authURL(tpParams("openid email")))
	wantIn(t, "login page", page, "de", "<h1>Anmelden</h1>", `<label for="f-username">Benutzername oder E-Mail</label>`,
		`<label for="f-password">Passwort</label>`, `<button type="submit">Anmelden</button>`, "um zu <strong>Third Party</strong> weiterzugehen")
	if resp.Header.Get("Content-Language") != "de" {
		t.Errorf("Content-Language %q", resp.Header.Get("Content-Language"))
	}
	resp, page = b.submitLogin(resp, page, "wrong password")
	wantIn(t, "wrong password", page, "de", "Falscher Benutzername oder falsches Passwort.")
	resp, page = b.submitLogin(resp, page, alicePassword)
	wantIn(t, "consent page", page, "de", "<h1>Zugriff erlauben?</h1>", "<strong>Third Party</strong> bittet um:",
		"Ihre E-Mail-Adresse", ">Erlauben</button>", ">Ablehnen</button>")
	resp, page = e.answer(b, page, "allow", "email")
	callbackQuery(t, resp, page)
	_, page = b.get(e.issuer + "/account")
	wantIn(t, "account page", page, "de", "<h1>Ihr Konto</h1>", "Angemeldet als <strong>alice</strong>.", "Dieser Browser",
		"Anwendungen mit Zugriff", "Überall sonst abmelden")
	_, page = b.get(e.issuer + "/")
	wantIn(t, "home page", page, "de", "Sie sind angemeldet als <strong>alice</strong>.")
	_, page = b.get(e.issuer + "/login?attempt=gone")
	wantIn(t, "expired sign-in", page, "de", "Diese Anmeldung ist abgelaufen")
	_, page = b.get(e.issuer + "/authorize?client_id=nobody&redirect_uri=https://x.example/cb&response_type=code")
	wantIn(t, "unknown client", page, "de", "Unbekannte Anwendung")
	if g := web.Gaps(); len(g) > 0 {
		t.Fatalf("texts of the sign-in flow without a German translation:\n%s", strings.Join(g, "\n"))
	}
}

// The application's ui_locales win over the browser's language, for
// the whole sign-in; an unsupported one leaves the browser's choice.
func TestUILocalesWin(t *testing.T) {
	e := newEnv(t, "RS256")
	b := e.browserIn("de")
	q := tpParams("openid email")
	q.Set("ui_locales", "ja fr-CA")
	resp, page := b.get(e.authURL(q))
	wantIn(t, "login page", page, "fr", "<h1>Se connecter</h1>", "Mot de passe")
	resp, page = b.submitLogin(resp, page, alicePassword)
	wantIn(t, "consent page", page, "fr", "Autoriser l’accès ?")
	e.answer(b, page, "deny")

	q.Set("ui_locales", "ja")
	_, page = e.browserIn("nl-BE, en;q=0.5").get(e.authURL(q))
	wantIn(t, "unsupported ui_locales", page, "nl", "<h1>Inloggen</h1>")
	_, page = e.browserIn("pt-BR").get(e.authURL(q))
	wantIn(t, "nothing supported", page, "en", "<h1>Sign in</h1>")
}

// Pages beside the main flow: their untranslated texts are listed (in
// the test's log), so that gaps are visible, without failing.
func TestOtherPagesGaps(t *testing.T) {
	e := newEnv(t, "RS256")
	web.Gaps()
	for _, lang := range []string{"de", "fr", "nl", "es"} {
		b := e.browserIn(lang)
		for _, path := range []string{"/device", "/logout", "/nothing-here"} {
			_, page := b.get(e.issuer + path)
			pageLang(t, page)
		}
	}
	if g := web.Gaps(); len(g) > 0 {
		t.Logf("untranslated texts on other pages:\n%s", strings.Join(g, "\n"))
	}
}
