package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page is what every template receives.
type Page struct {
	// Title, Message and every other human text are English; the
	// templates translate them (see i18n.go).
	Title string
	// Lang, when set, is the page's language (BCP 47 tags in order of
	// preference); else the language of the ResponseWriter (Localize),
	// else the default.
	Lang string
	// Static is the URL prefix of the assets (e.g. "/static").
	Static string
	// Message is an error or notice shown above the form.
	Message string
	// Data is the template's own data.
	Data any
	// FrameSrc are origins the page may embed in iframes (front-channel
	// logout); none by default.
	FrameSrc []string
	// Refresh, when set, sends the browser on to this URL after a few
	// seconds (meta refresh; works without JavaScript).
	Refresh string
	// Script, when set, is a file of the static assets the page loads
	// (the only script a page may run).
	Script string
	// ScriptSrc, when set instead, is the absolute URL of the one script
	// the page loads: the CSP allows that URL only.
	ScriptSrc string
	// ConnectSrc are the absolute URLs the page's script may fetch.
	ConnectSrc []string
	// FormAction, when set, are the only places the page's forms may
	// post to.
	FormAction []string
}

// Render writes the named template with status code. A template error
// becomes a plain 500, never a half-written page.
func Render(w http.ResponseWriter, status int, name string, p Page) {
	var buf bytes.Buffer
	tag := pageLanguage(w, p)
	if err := brand.Load().pages[tag].ExecuteTemplate(&buf, name, p); err != nil {
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Language", tag.String())
	h.Set("X-Frame-Options", "DENY")
	csp := "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
	if len(p.FrameSrc) > 0 {
		csp += "; frame-src " + strings.Join(p.FrameSrc, " ")
	}
	switch {
	case p.ScriptSrc != "":
		csp += "; script-src " + p.ScriptSrc
	case p.Script != "":
		csp += "; script-src 'self'"
	}
	if len(p.ConnectSrc) > 0 {
		csp += "; connect-src " + strings.Join(p.ConnectSrc, " ")
	}
	if len(p.FormAction) > 0 {
		csp += "; form-action " + strings.Join(p.FormAction, " ")
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Error renders the error page for people.
func Error(w http.ResponseWriter, static string, status int, title, detail string) {
	Render(w, status, "error.html", Page{Title: title, Static: static, Message: detail})
}

// Static serves the embedded assets; mount it with http.StripPrefix.
func Static() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if serveBrand(w, r) {
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// HasStatic reports whether name is a file of the embedded assets.
func HasStatic(name string) bool {
	if name == "" || strings.Contains(name, "..") {
		return false
	}
	info, err := fs.Stat(staticFS, "static/"+name)
	return err == nil && !info.IsDir()
}
