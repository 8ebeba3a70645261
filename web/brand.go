package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"

	"golang.org/x/text/language"
)

// Brand is how the pages look for one organisation: its name, logo,
// accent colour, extra CSS, and templates replacing built-in ones. The
// zero Brand is Gatehouse's own look.
type Brand struct {
	// Name replaces "Gatehouse" in page titles and the footer.
	Name string
	// Logo is an image shown at the top of every page (PNG, JPEG, GIF,
	// WebP or SVG), LogoType its media type.
	Logo     []byte
	LogoType string
	// Accent is the colour of buttons and links (#rgb or #rrggbb).
	Accent string
	// CSS is appended to the stylesheet.
	CSS []byte
	// Templates are files replacing built-in templates of the same name
	// (see web/templates; each defines the template named as its file).
	Templates map[string][]byte
}

const (
	maxLogo = 256 << 10
	maxCSS  = 64 << 10
)

var (
	accentRE = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)
	// brand is the look in force; pages and assets read it when served.
	brand atomic.Pointer[brandState]
)

// brandState is a Brand checked, with the templates it implies.
type brandState struct {
	Brand
	// pages are the templates, one set per shipped language (their t
	// function translates to it).
	pages map[language.Tag]*template.Template
	css   []byte
}

func init() {
	st, err := newBrandState(Brand{})
	if err != nil {
		panic(err)
	}
	brand.Store(st)
}

// CheckBrand checks b without putting it in force.
func CheckBrand(b Brand) error {
	_, err := newBrandState(b)
	return err
}

// SetBrand checks b and puts it in force for every page and asset of
// this process (the IdP's and the gates').
func SetBrand(b Brand) error {
	st, err := newBrandState(b)
	if err != nil {
		return err
	}
	brand.Store(st)
	return nil
}

func newBrandState(b Brand) (*brandState, error) {
	if strings.ContainsAny(b.Name, "<>\r\n") || len(b.Name) > 80 {
		return nil, errors.New("branding: the name must be one line of at most 80 characters, without < or >")
	}
	if b.Accent != "" && !accentRE.MatchString(b.Accent) {
		return nil, fmt.Errorf("branding: accent colour %q is not #rgb or #rrggbb", b.Accent)
	}
	if len(b.Logo) > maxLogo {
		return nil, fmt.Errorf("branding: the logo is %d KiB, more than %d KiB", len(b.Logo)>>10, maxLogo>>10)
	}
	if len(b.Logo) > 0 {
		b.LogoType = logoType(b.Logo)
		if b.LogoType == "" {
			return nil, errors.New("branding: the logo is not a PNG, JPEG, GIF, WebP or SVG image")
		}
	}
	if len(b.CSS) > maxCSS {
		return nil, fmt.Errorf("branding: the CSS is %d KiB, more than %d KiB", len(b.CSS)>>10, maxCSS>>10)
	}
	pages := map[language.Tag]*template.Template{}
	for _, tag := range shipped().tags {
		t, err := parsePages(b, tag)
		if err != nil {
			return nil, err
		}
		pages[tag] = t
	}
	var css bytes.Buffer
	if b.Accent != "" {
		fmt.Fprintf(&css, ":root { --accent:%s; }\n", b.Accent)
	}
	css.Write(b.CSS)
	return &brandState{Brand: b, pages: pages, css: css.Bytes()}, nil
}

// parsePages parses the built-in templates and b's for pages in tag.
func parsePages(b Brand, tag language.Tag) (*template.Template, error) {
	funcs := template.FuncMap(langFuncs(tag))
	funcs["brand"] = currentBrand
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for name, src := range b.Templates {
		if t.Lookup(name) == nil {
			return nil, fmt.Errorf("branding: template %s replaces no built-in template (they are: %s)", name, builtinNames(t))
		}
		if _, err := t.New(name).Parse(string(src)); err != nil {
			return nil, fmt.Errorf("branding: template %s: %w", name, err)
		}
	}
	return t, nil
}

// BrandFromDir reads a templates folder: every .html file in it replaces
// the built-in template of that name.
func BrandFromDir(dir string) (map[string][]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("branding: no .html template in %s", dir)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f)] = b
	}
	return out, nil
}

func builtinNames(t *template.Template) string {
	var names []string
	for _, x := range t.Templates() {
		if strings.HasSuffix(x.Name(), ".html") {
			names = append(names, x.Name())
		}
	}
	return strings.Join(names, ", ")
}

// logoType is the media type of an image, by its first bytes.
func logoType(b []byte) string {
	switch ct := http.DetectContentType(b); {
	case ct == "image/png", ct == "image/jpeg", ct == "image/gif", ct == "image/webp":
		return ct
	case bytes.Contains(bytes.ToLower(b[:min(len(b), 512)]), []byte("<svg")):
		return "image/svg+xml"
	}
	return ""
}

// brandView is what templates see of the brand.
type brandView struct {
	Name    string
	Logo    bool
	Styled  bool
	Product string
}

func currentBrand() brandView {
	b := brand.Load()
	v := brandView{Name: "Gatehouse", Logo: len(b.Logo) > 0, Styled: len(b.css) > 0, Product: "Gatehouse"}
	if b.Name != "" {
		v.Name = b.Name
	}
	return v
}

// serveBrand answers the brand's assets: brand.css and brand-logo.
func serveBrand(w http.ResponseWriter, r *http.Request) bool {
	b := brand.Load()
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "brand.css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b.css)
	case "brand-logo":
		if len(b.Logo) == 0 {
			http.NotFound(w, r)
			return true
		}
		w.Header().Set("Content-Type", b.LogoType)
		w.Header().Set("Cache-Control", "no-cache")
		// An SVG opened on its own must not run anything on this origin.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
		_, _ = w.Write(b.Logo)
	default:
		return false
	}
	return true
}
