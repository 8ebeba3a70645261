package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Branding from files, on the IdP's pages and on a gate's: the name,
// the logo (an SVG that cannot run script opened on its own), the
// accent colour and extra CSS, and a template replaced from a folder.
func TestBranding(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	logo := write("logo.svg", `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="18" fill="#0a7f5a"/></svg>`)
	css := write("extra.css", ".card { border-top: 4px solid var(--accent); }")
	write("templates/error.html", `{{define "error.html"}}{{template "head" .}}<p class="acme-help">{{.Message}} Call the Acme help desk.</p>{{template "foot" .}}{{end}}`)
	branding := fmt.Sprintf("branding {\n\t\t\tname \"Acme Sign-in\"\n\t\t\tlogo %s\n\t\t\taccent 0a7f5a\n\t\t\tcss %s\n\t\t\ttemplates %s\n\t\t}", logo, css, filepath.Join(dir, "templates"))
	s, gated := newGatedIDP(t, branding)

	b := newBrowser(t, "none")
	_, page := b.get(gated + "/")
	for _, want := range []string{"· Acme Sign-in</title>", `/static/brand.css"`, `class="brand-logo"`, "<footer>Acme Sign-in · Secured by Gatehouse</footer>"} {
		if !strings.Contains(page, want) {
			t.Errorf("sign-in page: no %s in\n%s", want, page)
		}
	}
	if _, page := b.get(s.issuer + "/nothing-here"); !strings.Contains(page, "Call the Acme help desk.") {
		t.Errorf("the error template is not replaced:\n%s", page)
	}
	plain := &http.Client{Transport: loopbackTransport()}
	for _, base := range []string{s.issuer + "/static", gated + "/.gatehouse/static"} {
		resp, err := plain.Get(base + "/brand-logo")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s/brand-logo: %d %v", base, resp.StatusCode, resp.Header)
		}
		resp, err = plain.Get(base + "/brand.css")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "--accent:#0a7f5a") || !strings.Contains(string(body), "border-top: 4px") {
			t.Errorf("%s/brand.css: %q", base, body)
		}
	}
}
