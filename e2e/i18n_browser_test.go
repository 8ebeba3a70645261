package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/oauth2"
)

// browserLanguage makes the tab ask for pages in lang (Accept-Language),
// as a browser set to that language does.
func browserLanguage(t *testing.T, ctx context.Context, lang string) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// evalJSON runs js (an expression giving a JSON string) and decodes it.
func evalJSON(t *testing.T, ctx context.Context, js string, v any) {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluating %.60q…: %v", js, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}

// contrastJS measures the WCAG 2 contrast ratio of each element's text
// colour against the background it is drawn on (the first ancestor with
// an opaque background), from the computed styles.
const contrastJS = `(() => {
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || c[3] > 0) return c; } return [255, 255, 255]; };
  const out = [];
  for (const [name, sel] of SELECTORS) {
    const el = document.querySelector(sel);
    if (!el) { out.push({name, ratio: 0, missing: true}); continue; }
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    out.push({name, ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
  }
  return JSON.stringify(out);
})()`

type contrast struct {
	Name    string
	Ratio   float64
	Missing bool
}

func checkContrast(t *testing.T, ctx context.Context, selectors [][2]string) {
	t.Helper()
	sel, _ := json.Marshal(selectors)
	var got []contrast
	evalJSON(t, ctx, strings.Replace(contrastJS, "SELECTORS", string(sel), 1), &got)
	for _, c := range got {
		switch {
		case c.Missing:
			t.Errorf("contrast: no element for %s", c.Name)
		case c.Ratio < 4.5:
			t.Errorf("contrast of %s is %.2f:1, below WCAG AA's 4.5:1", c.Name, c.Ratio)
		default:
			t.Logf("contrast of %s: %.2f:1", c.Name, c.Ratio)
		}
	}
}

// A browser set to German signs in on a branded login page: the page is
// German (its lang too), every field has its label, the tab order is the
// order of the page with a visible focus, text and buttons have enough
// contrast, and the layout mirrors for a right-to-left language.
func TestBrowserGermanLogin(t *testing.T) {
	s := newIDP(t, "branding {\n\t\t\tname \"Acme Anmeldung\"\n\t\t\taccent 0a7f5a\n\t\t}")
	s.addUser(t, "alice", "correct horse battery")
	rp := s.client(t)
	ctx := newChromium(t)
	browserLanguage(t, ctx, "de-DE,de;q=0.9,en;q=0.5")

	authURL := rp.conf.AuthCodeURL("de-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("f-username"))); err != nil {
		t.Fatalf("opening the login page: %v", err)
	}
	var page struct {
		Lang, Dir, Title, H1, Button string
		Labels                       map[string]string
		Unlabelled                   []string
	}
	evalJSON(t, ctx, `JSON.stringify({
	  lang: document.documentElement.lang, dir: document.documentElement.dir, title: document.title,
	  h1: document.querySelector("h1").textContent, button: document.querySelector("button[type=submit]").textContent,
	  labels: Object.fromEntries([...document.querySelectorAll("input:not([type=hidden])")].filter(i => i.labels.length).map(i => [i.id, i.labels[0].textContent.trim()])),
	  unlabelled: [...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(i => !i.labels.length || !i.labels[0].textContent.trim()).map(i => i.name),
	})`, &page)
	if page.Lang != "de" || page.Dir != "ltr" || page.H1 != "Anmelden" || page.Button != "Anmelden" || page.Title != "Anmelden · Acme Anmeldung" {
		t.Fatalf("not the German login page: %+v", page)
	}
	if page.Labels["f-username"] != "Benutzername oder E-Mail" || page.Labels["f-password"] != "Passwort" || len(page.Unlabelled) > 0 {
		t.Fatalf("labels: %v, fields without a label: %v", page.Labels, page.Unlabelled)
	}
	screenshot(t, ctx, "login-de.png")

	checkTabOrder(t, ctx)
	checkContrast(t, ctx, [][2]string{{"the heading", "h1"}, {"a label", "label[for=f-username]"}, {"the field text", "#f-username"},
		{"the button", "button[type=submit]"}, {"a hint", ".hint"}, {"the footer", "footer"}})

	// A wrong password: the German message, announced (role=alert),
	// readable.
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "wrong"),
		chromedp.Submit(chromedp.ID("f-password")),
		chromedp.WaitVisible(chromedp.CSS(".message")),
	)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.message[role="alert"]`)))
	if err != nil || msg != "Falscher Benutzername oder falsches Passwort." {
		t.Fatalf("error message %q (%v)", msg, err)
	}
	checkContrast(t, ctx, [][2]string{{"the error message", ".message"}})

	checkRTL(t, ctx)

	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")),
	)
	if err != nil {
		t.Fatal(err)
	}
	var loc string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(loc, s.redirect) {
			return
		}
	}
	t.Fatalf("the sign-in did not reach the application: at %s", loc)
}

// checkTabOrder presses Tab through the page: focus follows the order of
// the focusable elements in the page (no tabindex reordering), starting
// at the first field, and every focused element shows a focus outline.
func checkTabOrder(t *testing.T, ctx context.Context) {
	t.Helper()
	var want []string
	evalJSON(t, ctx, `JSON.stringify([...document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, [tabindex]")]
	  .filter(e => !e.disabled && e.offsetParent !== null && e.tabIndex >= 0).map(e => e.id || e.textContent.trim() || e.name))`, &want)
	if len(want) < 3 {
		t.Fatalf("focusable elements: %v", want)
	}
	var positive int
	evalJSON(t, ctx, `JSON.stringify(document.querySelectorAll("[tabindex]:not([tabindex='0']):not([tabindex='-1'])").length)`, &positive)
	if positive > 0 {
		t.Errorf("%d elements reorder the tab order with a positive tabindex", positive)
	}
	// The first field has the focus on arrival (autofocus).
	var first string
	evalJSON(t, ctx, `JSON.stringify(document.activeElement.id)`, &first)
	if first != want[0] {
		t.Errorf("on arrival the focus is on %q, not %q", first, want[0])
	}
	// Tab from the start of the page, as a person who moved away does.
	start := `document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute("tabindex"); null`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](start)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range want {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		var f struct {
			ID      string
			Outline string
		}
		evalJSON(t, ctx, `(() => { const e = document.activeElement, s = getComputedStyle(e);
		  return JSON.stringify({id: e.id || e.textContent.trim() || e.name, outline: s.outlineStyle === "none" || s.outlineWidth === "0px" ? "" : s.outlineStyle + " " + s.outlineWidth}); })()`, &f)
		got = append(got, f.ID)
		if f.Outline == "" {
			t.Errorf("%s has no visible focus outline", f.ID)
		}
	}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("tab order\n got %q\nwant %q", got, want)
	}
}

// checkRTL turns the page right to left, as a right-to-left language
// does with dir="rtl": the layout is written in logical properties, so
// labels and text then start at the right edge.
func checkRTL(t *testing.T, ctx context.Context) {
	t.Helper()
	var r struct{ LabelRight, InputRight, TextRight, CardRight, LabelLeft, InputLeft float64 }
	evalJSON(t, ctx, `(() => { document.documentElement.dir = "rtl";
	  const l = document.querySelector("label[for=f-username]"), i = document.getElementById("f-username"), p = document.querySelector("main p, main h1");
	  const range = document.createRange(); range.selectNodeContents(l);
	  const out = {labelRight: range.getBoundingClientRect().right, labelLeft: range.getBoundingClientRect().left,
	    inputRight: i.getBoundingClientRect().right, inputLeft: i.getBoundingClientRect().left,
	    textRight: (() => { const r2 = document.createRange(); r2.selectNodeContents(p); return r2.getBoundingClientRect().right; })(),
	    cardRight: document.querySelector("main").getBoundingClientRect().right};
	  document.documentElement.dir = "ltr";
	  return JSON.stringify(out); })()`, &r)
	if abs(r.LabelRight-r.InputRight) > 1.5 || r.LabelLeft-r.InputLeft < 10 {
		t.Errorf("right to left: the label does not start at the field's right edge: %+v", r)
	}
	if r.CardRight-r.TextRight > 40 {
		t.Errorf("right to left: the text does not start at the right: %+v", r)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
