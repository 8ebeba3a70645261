package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// Pages are written in English: a module or handler puts plain English
// in a Page (title, message, labels), and templates call t on every
// human string. t looks the English text up in the catalogue of the
// page's language (locales/<tag>.json: English text → translation) and
// falls back to the English text. A text with arguments (a client's
// name, a number) is made by Sprintf, which keeps the English format as
// the message key and the arguments beside it, so the translation may
// reorder them (%[2]s).

//go:embed locales/*.json
var localeFS embed.FS

// catalogue is the shipped translations, read once.
type catalogue struct {
	// tags are the shipped languages, English first.
	tags  []language.Tag
	texts map[language.Tag]map[string]string
	cat   catalog.Catalog
}

var shipped = sync.OnceValue(func() *catalogue {
	c, err := loadCatalogue(localeFS)
	if err != nil {
		panic(err)
	}
	return c
})

func loadCatalogue(fsys fs.FS) (*catalogue, error) {
	files, err := fs.Glob(fsys, "locales/*.json")
	if err != nil {
		return nil, err
	}
	c := &catalogue{tags: []language.Tag{language.English}, texts: map[language.Tag]map[string]string{}}
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	for _, f := range files {
		tag, err := language.Parse(strings.TrimSuffix(path.Base(f), ".json"))
		if err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", f, err)
		}
		raw, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		texts := map[string]string{}
		if err := json.Unmarshal(raw, &texts); err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", f, err)
		}
		for k, v := range texts {
			if err := b.SetString(tag, k, v); err != nil {
				return nil, fmt.Errorf("catalogue %s: %q: %w", f, k, err)
			}
		}
		c.texts[tag] = texts
		if tag != language.English {
			c.tags = append(c.tags, tag)
		}
	}
	if c.texts[language.English] == nil {
		return nil, errors.New("catalogue: no English catalogue (locales/en.json)")
	}
	c.cat = b
	return c, nil
}

// Languages are the tags of the languages pages are shipped in, English
// first.
func Languages() []string {
	var out []string
	for _, t := range shipped().tags {
		out = append(out, t.String())
	}
	return out
}

// languageSet is the languages in force: the shipped ones an admin
// allows, the default first, and their matcher.
type languageSet struct {
	tags    []language.Tag
	matcher language.Matcher
}

var inForce atomic.Pointer[languageSet]

func init() {
	ls, err := newLanguageSet(nil)
	if err != nil {
		panic(err)
	}
	inForce.Store(ls)
}

// CheckLanguages checks a list of languages for SetLanguages.
func CheckLanguages(tags []string) error {
	_, err := newLanguageSet(tags)
	return err
}

// SetLanguages restricts pages to tags (shipped languages; the first is
// the default, used when a browser asks for none of them). Empty means
// every shipped language, English by default.
func SetLanguages(tags []string) error {
	ls, err := newLanguageSet(tags)
	if err != nil {
		return err
	}
	inForce.Store(ls)
	return nil
}

func newLanguageSet(tags []string) (*languageSet, error) {
	c := shipped()
	ls := &languageSet{}
	if len(tags) == 0 {
		ls.tags = c.tags
	}
	for _, s := range tags {
		t, err := language.Parse(s)
		if err != nil || !slices.Contains(c.tags, t) {
			return nil, fmt.Errorf("language %q is not one pages are translated to (%s)", s, strings.Join(Languages(), ", "))
		}
		if slices.Contains(ls.tags, t) {
			return nil, fmt.Errorf("language %q is listed twice", s)
		}
		ls.tags = append(ls.tags, t)
	}
	ls.matcher = language.NewMatcher(ls.tags)
	return ls, nil
}

// maxLocales bounds the header and parameter read for a language: a
// real browser's Accept-Language is far shorter.
const maxLocales = 512

// Negotiate picks the language of a page: the first of uiLocales (the
// OpenID ui_locales parameter, space-separated tags in order of
// preference) that pages are in, else the best of acceptLanguage
// (q-values weigh), else the default.
func Negotiate(uiLocales, acceptLanguage string) string {
	return negotiate(uiLocales, acceptLanguage).String()
}

func negotiate(uiLocales, acceptLanguage string) language.Tag {
	ls := inForce.Load()
	if len(uiLocales) <= maxLocales {
		for _, s := range strings.Fields(uiLocales) {
			if t, err := language.Parse(s); err == nil {
				if _, i, conf := ls.matcher.Match(t); conf >= language.High {
					return ls.tags[i]
				}
			}
		}
	}
	if len(acceptLanguage) <= maxLocales {
		if prefs, _, err := language.ParseAcceptLanguage(acceptLanguage); err == nil && len(prefs) > 0 {
			if _, i, conf := ls.matcher.Match(prefs...); conf >= language.High {
				return ls.tags[i]
			}
		}
	}
	return ls.tags[0]
}

// langWriter carries the request's language preferences to Render.
type langWriter struct {
	http.ResponseWriter
	accept, locales string
}

func (l *langWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// Localize returns w carrying r's Accept-Language, so that pages
// rendered on it are in the language the browser prefers. A handler
// calls it once at its entry; nested handlers keep the first.
func Localize(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if findLang(w) != nil {
		return w
	}
	return &langWriter{ResponseWriter: w, accept: r.Header.Get("Accept-Language")}
}

// PreferLocales records the ui_locales of the authorization request a
// page serves: they win over the browser's preferences. w must come
// from Localize (else nothing happens).
func PreferLocales(w http.ResponseWriter, uiLocales string) {
	if l := findLang(w); l != nil && uiLocales != "" {
		l.locales = uiLocales
	}
}

func findLang(w http.ResponseWriter) *langWriter {
	for range 8 {
		switch x := w.(type) {
		case *langWriter:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// pageLanguage is the language of a page rendered on w: the page's own
// Lang, else what w carries, else the default.
func pageLanguage(w http.ResponseWriter, p Page) language.Tag {
	if p.Lang != "" {
		return negotiate(p.Lang, "")
	}
	if l := findLang(w); l != nil {
		return negotiate(l.locales, l.accept)
	}
	return negotiate("", "")
}

// Text is s in the language of the pages rendered on w (see Localize),
// for texts a page's script shows: the answers of its JSON endpoints.
func Text(w http.ResponseWriter, s string) string { return translate(pageLanguage(w, Page{}), s, 0) }

// textMark starts a text made by Sprintf: the mark, then a JSON array of
// the format and its arguments. JSON escapes control characters, so a
// Sprintf text nests inside another as an argument.
const textMark = "\x1e"

// Sprintf makes a text with arguments for a page: English by
// fmt.Sprintf rules, and translated where a template shows it (t). The
// format is the message key; arguments are strings (or anything
// fmt.Sprint makes one of), each shown with %s or %[n]s.
func Sprintf(format string, args ...any) string {
	parts := make([]string, 0, 1+len(args))
	parts = append(parts, format)
	for _, a := range args {
		parts = append(parts, fmt.Sprint(a))
	}
	b, _ := json.Marshal(parts)
	return textMark + string(b)
}

// english is a text as the English page shows it (a Sprintf text
// formatted; any other string as it is), for logs and plain-text
// answers.
func english(s string) string { return translate(language.English, s, 0) }

// translate is s in tag: s itself when the catalogue has no
// translation. The arguments of a Sprintf text are data (names,
// numbers), shown as they are, except those made by Sprintf themselves.
func translate(tag language.Tag, s string, depth int) string {
	format, args, ok := unpack(s)
	if !ok {
		return lookup(tag, s)
	}
	if depth > 3 {
		return ""
	}
	lookup(tag, format) // notes a gap
	return message.NewPrinter(tag, message.Catalog(shipped().cat)).Sprintf(format, arguments(tag, args, depth)...)
}

// arguments are the arguments of a Sprintf text for its format.
func arguments(tag language.Tag, args []string, depth int) []any {
	vals := make([]any, len(args))
	for i, a := range args {
		if _, _, packed := unpack(a); packed {
			a = translate(tag, a, depth+1)
		}
		vals[i] = a
	}
	return vals
}

func unpack(s string) (string, []string, bool) {
	rest, ok := strings.CutPrefix(s, textMark)
	if !ok {
		return "", nil, false
	}
	var parts []string
	if err := json.Unmarshal([]byte(rest), &parts); err != nil || len(parts) == 0 {
		return "", nil, false
	}
	return parts[0], parts[1:], true
}

func lookup(tag language.Tag, s string) string {
	if s == "" {
		return s
	}
	if v, ok := shipped().texts[tag][s]; ok {
		return v
	}
	if tag != language.English {
		gaps.note(tag, s)
	}
	return s
}

// gaps remembers texts a page asked for in a language that has no
// translation for them, to show what is missing (Gaps).
var gaps = gapSet{seen: map[string]bool{}}

type gapSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxGaps = 1000

func (g *gapSet) note(tag language.Tag, s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) < maxGaps {
		g.seen[tag.String()+": "+s] = true
	}
}

// Gaps lists the texts pages showed untranslated since the last call
// ("de: Some text"), sorted, and forgets them.
func Gaps() []string {
	gaps.mu.Lock()
	defer gaps.mu.Unlock()
	var out []string
	for k := range gaps.seen {
		out = append(out, k)
	}
	clear(gaps.seen)
	slices.Sort(out)
	return out
}

// direction is "rtl" for languages written right to left.
func direction(tag language.Tag) string {
	s, _ := tag.Script()
	switch s.String() {
	case "Arab", "Hebr", "Thaa", "Syrc", "Nkoo", "Adlm", "Rohg", "Mand", "Samr":
		return "rtl"
	}
	return "ltr"
}

// langFuncs are the template functions of pages in tag: t translates a
// text (with arguments: the text is a format, see Sprintf), th one with
// markup, lang and dir are for the html element.
func langFuncs(tag language.Tag) map[string]any {
	return map[string]any{
		"t": func(s string, args ...any) string {
			if len(args) > 0 {
				s = Sprintf(s, args...)
			}
			return translate(tag, s, 0)
		},
		// th is t for a format with markup (<strong>): the format
		// comes from the template and the shipped catalogues, the
		// arguments are escaped.
		"th": func(format string, args ...any) template.HTML {
			vals := make([]string, len(args))
			for i, a := range args {
				vals[i] = fmt.Sprint(a)
			}
			escaped := arguments(tag, vals, 0)
			for i, v := range escaped {
				escaped[i] = template.HTMLEscapeString(v.(string))
			}
			lookup(tag, format)
			return template.HTML(message.NewPrinter(tag, message.Catalog(shipped().cat)).Sprintf(format, escaped...))
		},
		"lang": func() string { return tag.String() },
		"dir":  func() string { return direction(tag) },
	}
}
