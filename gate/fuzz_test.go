package gate

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
)

// upstreamView is the most an upstream might do to a path before serving
// it: decode escapes (even twice), take '\' for '/', cut ';' parameters,
// trim trailing dots and spaces of segments (Windows), merge "//" and
// resolve dot segments.
func upstreamView(raw string) string {
	p := raw
	for range 3 {
		d, err := url.PathUnescape(p)
		if err != nil {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, "\\", "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = strings.TrimRight(s, ". ")
		if s == "." || s == ".." {
			segs[i] = s
		}
	}
	p = strings.Join(segs, "/")
	clean := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// FuzzCanonicalPath: a path the gate accepts is served by any upstream
// as exactly the path the gate decided on, so a bypassed path stays
// bypassed (and a protected one protected) after the upstream's
// cleaning.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/public/a", "/public/../private", "/public/%2e%2e/x", "/a/%252e", "/a;b", "/a/./b",
		"/admin./x", "/%61dmin", "/public//x", "/a%2fb", "/caf%C3%A9", "/a%20b", "/100%25", "/x/%c0%ae", "/health"} {
		f.Add(s)
	}
	p := Policy{Bypass: []string{"/public/*", "/health", "/assets/*.css"}}
	f.Fuzz(func(t *testing.T, raw string) {
		decoded, err := CanonicalPath(raw)
		if err != nil {
			return
		}
		if up := upstreamView(raw); up != decoded {
			t.Fatalf("accepted %q: the gate decides on %q, an upstream serves %q", raw, decoded, up)
		}
		if u, err := url.PathUnescape(raw); err != nil || u != decoded {
			t.Fatalf("accepted %q decodes to %q, not %q", raw, u, decoded)
		}
		if p.Bypassed(decoded) != p.Bypassed(upstreamView(raw)) {
			t.Fatalf("%q: bypass differs between the gate and the upstream", raw)
		}
	})
}

// FuzzSafeReturn: an accepted return address never leaves the site,
// however a browser resolves it.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/a?b=c", "//evil", "/\\evil", "https://evil", "/%2F%2Fevil", "/%5cevil", "/a#b", "/ /evil", "/\t/evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://site.example/dir/page")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := SafeReturn(s)
		if !ok {
			return
		}
		u, err := url.Parse(v)
		if err != nil {
			t.Fatalf("accepted unparsable %q", v)
		}
		if got := base.ResolveReference(u); got.Host != "site.example" || got.Scheme != "https" {
			t.Fatalf("accepted %q resolves to %s", v, got)
		}
		// Browsers treat '\' like '/' and drop tabs and newlines.
		b := strings.NewReplacer("\\", "/", "\t", "", "\n", "", "\r", "").Replace(v)
		if strings.HasPrefix(b, "//") || !strings.HasPrefix(b, "/") {
			t.Fatalf("accepted %q, which a browser reads as %q", v, b)
		}
	})
}

// FuzzGateCookie: no cookie value verifies unless it is one the gate
// made for that origin.
func FuzzGateCookie(f *testing.F) {
	g := newTestGate(f, nil, Config{}, Site{})
	good := "sess-1." + g.cfg.Cookies.Sign(purposeCookie, "http://app.localhost\x00sess-1")
	f.Add(good)
	f.Add("sess-1.")
	f.Add(".")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		id := g.cookies.verify(v, "http://app.localhost")
		if id != "" && v != good {
			t.Fatalf("forged cookie %q verified as %q", v, id)
		}
		if g.cookies.verify(v, "http://other.localhost") != "" {
			t.Fatalf("cookie %q verified for another origin", v)
		}
	})
}

// FuzzCanonicalOrigin: no panic, and canonical origins are fixed points.
func FuzzCanonicalOrigin(f *testing.F) {
	for _, s := range []string{"https://a.example", "http://A.example:80", "http://[::1]:8080", "https://a:b@c", "http://a.example:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := CanonicalOrigin(s)
		if err != nil {
			return
		}
		if again, err := CanonicalOrigin(o); err != nil || again != o {
			t.Fatalf("%q → %q → %q, %v", s, o, again, err)
		}
	})
}

// FuzzCookieValue: the gate's own cookie scan agrees with net/http on
// every Cookie header: what it finds is a value net/http parses for that
// name, and when net/http's first such cookie is in the gate cookies'
// alphabet, the scan finds exactly it.
func FuzzCookieValue(f *testing.F) {
	f.Add("gh-gate=abc.def", "gh-gate")
	f.Add(`a=1; gh-gate="abc.def"; gh-gate=zzz`, "gh-gate")
	f.Add("gh-gate=; gh-gate=x\ty;  gh-gate = v", "gh-gate")
	f.Fuzz(func(t *testing.T, line, name string) {
		if (&http.Cookie{Name: name}).Valid() != nil {
			t.Skip("the gate's cookie name is a valid one")
		}
		h := http.Header{"Cookie": {line}}
		got, ok := cookieValue(h, name)
		var std []string
		for _, c := range (&http.Request{Header: h}).Cookies() {
			if c.Name == name {
				std = append(std, c.Value)
			}
		}
		if ok && !slices.Contains(std, got) {
			t.Fatalf("found %q, net/http has %q", got, std)
		}
		if len(std) > 0 && cookieAlphabet(std[0]) && (!ok || got != std[0]) {
			t.Fatalf("net/http's first is %q, found %q %v", std[0], got, ok)
		}
	})
}
