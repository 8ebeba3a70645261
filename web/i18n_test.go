package web

import (
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

func TestNegotiate(t *testing.T) {
	for _, c := range []struct{ name, ui, accept, want string }{
		{"nothing asked: English", "", "", "en"},
		{"browser's language", "", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"ui_locales beats Accept-Language", "fr-CA fr", "de-DE,de;q=0.9", "fr"},
		{"first supported of ui_locales", "ja nl-BE es", "de", "nl"},
		{"unsupported ui_locales: Accept-Language", "ja zh", "es-MX,es;q=0.9", "es"},
		{"q-values weigh, not order", "", "de;q=0.2, fr;q=0.9, en;q=0.5", "fr"},
		{"q=0 is a refusal", "", "de;q=0, nl", "nl"},
		{"unsupported: English", "", "ja,zh-CN;q=0.8", "en"},
		{"a near language is not taken", "", "pt-BR", "en"},
		{"region of a supported language", "", "de-AT", "de"},
		{"wildcard", "", "*", "en"},
		{"malformed header", "", ";;;q=x,,", "en"},
		{"malformed ui_locales skipped", "%%% 12345 de", "", "de"},
		{"oversized ui_locales ignored", strings.Repeat("x ", 400) + "de", "fr", "fr"},
		{"oversized header ignored", "", strings.Repeat("ja,", 300) + "de", "en"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Negotiate(c.ui, c.accept); got != c.want {
				t.Fatalf("Negotiate(%q, %q) = %s, want %s", c.ui, c.accept, got, c.want)
			}
		})
	}
}

func TestSetLanguages(t *testing.T) {
	t.Cleanup(func() { _ = SetLanguages(nil) })
	if err := SetLanguages([]string{"de", "en"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ui, accept, want string }{
		{"", "", "de"},       // the first is the default
		{"", "ja", "de"},     // unsupported: the default, not English
		{"fr", "nl", "de"},   // not allowed here
		{"en", "de", "en"},   // ui_locales still wins among the allowed
		{"", "fr, en", "en"}, // the best allowed of the browser's
	} {
		if got := Negotiate(c.ui, c.accept); got != c.want {
			t.Errorf("restricted to de,en: Negotiate(%q, %q) = %s, want %s", c.ui, c.accept, got, c.want)
		}
	}
	for _, bad := range [][]string{{"xx"}, {"ja"}, {"de", "de"}, {"not a tag!"}} {
		if err := SetLanguages(bad); err == nil {
			t.Errorf("SetLanguages(%q) accepted", bad)
		}
		if err := CheckLanguages(bad); err == nil {
			t.Errorf("CheckLanguages(%q) accepted", bad)
		}
	}
	if got := Negotiate("", ""); got != "de" {
		t.Fatalf("a refused setting changed the languages in force: default %s", got)
	}
}

var verbRE = regexp.MustCompile(`%(?:\[\d+\])?[a-zA-Z%]`)

// Every shipped language has every text of the English catalogue, with
// the same arguments, and nothing the English one lacks (a stale key).
func TestCatalogueComplete(t *testing.T) {
	c := shipped()
	for _, want := range []string{"en", "de", "fr", "nl", "es"} {
		if !slices.Contains(Languages(), want) {
			t.Errorf("language %s is not shipped (%v)", want, Languages())
		}
	}
	en := c.texts[language.English]
	if len(en) < 200 {
		t.Fatalf("the English catalogue has %d texts only", len(en))
	}
	for k, v := range en {
		for _, verb := range verbRE.FindAllString(k, -1) {
			if !strings.HasSuffix(verb, "s") {
				t.Errorf("en: %q: arguments are strings: use %%s or %%[n]s, not %s", k, verb)
			}
		}
		if v != k {
			t.Errorf("en: %q is given as %q: the English text is its own key", k, v)
		}
	}
	for _, tag := range c.tags[1:] {
		texts := c.texts[tag]
		for k := range en {
			v, ok := texts[k]
			switch {
			case !ok:
				t.Errorf("%s: missing %q", tag, k)
			case strings.TrimSpace(v) == "":
				t.Errorf("%s: empty translation of %q", tag, k)
			case !sameArgs(k, v):
				t.Errorf("%s: %q has other arguments than %q", tag, v, k)
			}
		}
		for k := range texts {
			if _, ok := en[k]; !ok {
				t.Errorf("%s: %q is not an English text (stale?)", tag, k)
			}
		}
	}
}

func sameArgs(a, b string) bool {
	count := func(s string) int {
		n := 0
		for _, v := range verbRE.FindAllString(s, -1) {
			if v != "%%" {
				n++
			}
		}
		return n
	}
	return count(a) == count(b)
}

func TestSprintf(t *testing.T) {
	s := Sprintf("Sign out of %s too", "Wiki <b>")
	if got := english(s); got != "Sign out of Wiki <b> too" {
		t.Fatalf("English: %q", got)
	}
	if got := translate(language.German, s, 0); got != "Auch von Wiki <b> abmelden" {
		t.Fatalf("German: %q", got)
	}
	// An argument made by Sprintf is translated; a plain one is data.
	wait := Sprintf("There were too many failed sign-in attempts. Wait %s, then try again.", Duration(3*time.Minute))
	if got := translate(language.French, wait, 0); got != "Il y a eu trop de tentatives de connexion échouées. Attendez 3 minutes, puis réessayez." {
		t.Fatalf("French: %q", got)
	}
	plain := Sprintf("Sign in with %s", "Sign in")
	if got := translate(language.Dutch, plain, 0); got != "Inloggen met Sign in" {
		t.Fatalf("a plain argument was translated: %q", got)
	}
	// Unknown formats fall back to English, formatted, and are noted.
	Gaps()
	if got := translate(language.Spanish, Sprintf("No such text %s", "x"), 0); got != "No such text x" {
		t.Fatalf("fallback: %q", got)
	}
	if got := translate(language.Spanish, "Plain unknown text", 0); got != "Plain unknown text" {
		t.Fatalf("fallback: %q", got)
	}
	if g := Gaps(); !slices.Equal(g, []string{"es: No such text %s", "es: Plain unknown text"}) {
		t.Fatalf("gaps: %q", g)
	}
	if g := Gaps(); len(g) != 0 {
		t.Fatalf("gaps not forgotten: %q", g)
	}
	// Deep nesting stops, without a panic.
	deep := "x"
	for range 10 {
		deep = Sprintf("with %s", deep)
	}
	_ = translate(language.German, deep, 0)
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second: "a second", 10 * time.Second: "10 seconds", time.Minute: "a minute", 15 * time.Minute: "15 minutes",
		time.Hour: "an hour", 5 * time.Hour: "5 hours", 24 * time.Hour: "a day", 30 * 24 * time.Hour: "30 days",
	} {
		if got := english(Duration(d)); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
	if got := translate(language.German, Duration(30*24*time.Hour), 0); got != "30 Tage" {
		t.Errorf("German: %q", got)
	}
}

func TestDirection(t *testing.T) {
	for tag, want := range map[string]string{"ar": "rtl", "he": "rtl", "fa": "rtl", "ur": "rtl", "de": "ltr", "en": "ltr", "sr-Cyrl": "ltr"} {
		if got := direction(language.MustParse(tag)); got != want {
			t.Errorf("direction(%s) = %s, want %s", tag, got, want)
		}
	}
}

// Localize carries the browser's language to Render, PreferLocales the
// request's ui_locales; Page.Lang wins over both.
func TestLocalize(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "nl-NL,nl;q=0.9,en;q=0.5")
	rec := httptest.NewRecorder()
	w := Localize(rec, r)
	if Localize(w, r) != w {
		t.Fatal("a second Localize wrapped again")
	}
	page := func(w2 *httptest.ResponseRecorder, p Page) string {
		if w2.Header().Get("Content-Language") == "" {
			t.Fatal("no Content-Language")
		}
		return w2.Body.String()
	}
	Render(w, 200, "error.html", Page{Title: "Page not found", Message: "There is nothing at this address."})
	body := page(rec, Page{})
	for _, want := range []string{`<html lang="nl" dir="ltr">`, "<h1>Pagina niet gevonden</h1>", "Er staat niets op dit adres.", "Beveiligd door Gatehouse"} {
		if !strings.Contains(body, want) {
			t.Fatalf("missing %q:\n%s", want, body)
		}
	}
	rec = httptest.NewRecorder()
	w = Localize(rec, r)
	PreferLocales(w, "es")
	Render(w, 200, "error.html", Page{Title: "Page not found"})
	if body := page(rec, Page{}); !strings.Contains(body, `<html lang="es"`) || !strings.Contains(body, "Página no encontrada") {
		t.Fatalf("ui_locales did not win:\n%s", body)
	}
	rec = httptest.NewRecorder()
	Render(Localize(rec, r), 200, "error.html", Page{Title: "Page not found", Lang: "fr"})
	if body := page(rec, Page{}); !strings.Contains(body, `<html lang="fr"`) || !strings.Contains(body, "Page introuvable") {
		t.Fatalf("Page.Lang did not win:\n%s", body)
	}
	// Without Localize: the default language.
	rec = httptest.NewRecorder()
	PreferLocales(rec, "de") // no effect, no panic
	Render(rec, 200, "error.html", Page{Title: "Page not found"})
	if body := page(rec, Page{}); !strings.Contains(body, `<html lang="en"`) {
		t.Fatalf("default:\n%s", body)
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add("fr de", "de-DE,de;q=0.9,en;q=0.8")
	f.Add("", "*;q=0.1, x-klingon;q=1")
	f.Fuzz(func(t *testing.T, ui, accept string) {
		got := Negotiate(ui, accept)
		if !slices.Contains(Languages(), got) {
			t.Fatalf("Negotiate(%q, %q) = %q, not a shipped language", ui, accept, got)
		}
	})
}

func FuzzTranslate(f *testing.F) {
	f.Add(Sprintf("Sign out of %s too", "x"))
	f.Add(textMark + `["%[2]s %[1]s %d", "a"]`)
	f.Add(textMark + `not json`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, tag := range shipped().tags {
			_ = translate(tag, s, 0)
		}
		Gaps()
	})
}
