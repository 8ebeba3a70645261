package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func render(t *testing.T, name string, p Page) string {
	t.Helper()
	w := httptest.NewRecorder()
	Render(w, 200, name, p)
	if w.Code != 200 {
		t.Fatalf("%s: %d %s", name, w.Code, w.Body)
	}
	return w.Body.String()
}

func get(path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	http.StripPrefix("/static", Static()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/static"+path, nil))
	return w
}

func TestBrand(t *testing.T) {
	t.Cleanup(func() { _ = SetBrand(Brand{}) })
	page := render(t, "error.html", Page{Title: "Oops", Static: "/static"})
	if !strings.Contains(page, "<title>Oops · Gatehouse</title>") || strings.Contains(page, "brand.css") || strings.Contains(page, "brand-logo") {
		t.Fatalf("default look:\n%s", page)
	}
	svg := []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>`)
	err := SetBrand(Brand{Name: "Acme Sign-in", Accent: "#0a7", Logo: svg, CSS: []byte("main { border: 0 }"),
		Templates: map[string][]byte{"error.html": []byte(`{{define "error.html"}}{{template "head" .}}<p class="acme">{{.Message}}</p>{{template "foot" .}}{{end}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	page = render(t, "error.html", Page{Title: "Oops", Static: "/static", Message: "<b>x</b>"})
	for _, want := range []string{"<title>Oops · Acme Sign-in</title>", `href="/static/brand.css"`, `<img class="brand-logo" src="/static/brand-logo" alt="Acme Sign-in">`,
		"<footer>Acme Sign-in · Secured by Gatehouse</footer>", `<p class="acme">&lt;b&gt;x&lt;/b&gt;</p>`} {
		if !strings.Contains(page, want) {
			t.Errorf("no %s in:\n%s", want, page)
		}
	}
	css := get("/brand.css")
	if css.Code != 200 || css.Body.String() != ":root { --accent:#0a7; }\nmain { border: 0 }" || css.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("brand.css: %d %q", css.Code, css.Body)
	}
	logo := get("/brand-logo")
	if h := logo.Header(); logo.Code != 200 || h.Get("Content-Type") != "image/svg+xml" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") ||
		h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("logo: %d %v", logo.Code, h)
	}
	if get("/gatehouse.css").Code != 200 {
		t.Fatal("the built-in assets are gone")
	}
	bads := []Brand{
		{Accent: "red; background:url(x)"},
		{Name: "<script>"},
		{Logo: []byte("just text")},
		{Templates: map[string][]byte{"nope.html": []byte("x")}},
		{Templates: map[string][]byte{"error.html": []byte("{{define")}},
		{CSS: make([]byte, maxCSS+1)},
	}
	for _, bad := range bads {
		if err := SetBrand(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	// A refused brand leaves the one in force.
	if page := render(t, "error.html", Page{Title: "Oops", Static: "/static"}); !strings.Contains(page, "Acme Sign-in") {
		t.Fatal("a refused brand changed the look")
	}
	if err := SetBrand(Brand{}); err != nil {
		t.Fatal(err)
	}
	if none := get("/brand-logo"); none.Code != 404 {
		t.Fatalf("logo without a brand: %d", none.Code)
	}
}
