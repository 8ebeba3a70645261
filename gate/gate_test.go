package gate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestPolicyDecide(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	alice := &Session{Username: "alice", Groups: []string{"staff"}, Levels: []string{"1"}, AuthTime: now.Add(-time.Hour)}
	strong := &Session{Username: "bob", Groups: []string{"admins"}, Levels: []string{"1", "2"}, AuthTime: now.Add(-time.Minute)}
	off := &Session{Username: "carol", Levels: []string{"1"}, Disabled: true, AuthTime: now}
	cases := []struct {
		name string
		p    Policy
		s    *Session
		want Verdict
	}{
		{"no session", Policy{}, nil, Login},
		{"any user", Policy{}, alice, Pass},
		{"disabled", Policy{}, off, Forbidden},
		{"level missing", Policy{ACR: []string{"2"}}, alice, StepUp},
		{"any of levels", Policy{ACR: []string{"3", "2"}}, strong, Pass},
		{"too old", Policy{MaxAge: 15 * time.Minute}, alice, StepUp},
		{"fresh enough", Policy{MaxAge: 15 * time.Minute}, strong, Pass},
		{"allow group", Policy{AllowGroups: []string{"admins"}}, strong, Pass},
		{"not in allowed group", Policy{AllowGroups: []string{"admins"}}, alice, Forbidden},
		{"allow user", Policy{AllowUsers: []string{"alice"}}, alice, Pass},
		{"allowed by user or group", Policy{AllowUsers: []string{"alice"}, AllowGroups: []string{"admins"}}, strong, Pass},
		{"deny user wins", Policy{AllowGroups: []string{"staff"}, DenyUsers: []string{"alice"}}, alice, Forbidden},
		{"deny group", Policy{DenyGroups: []string{"admins"}}, strong, Forbidden},
		{"refused before step-up", Policy{ACR: []string{"2"}, AllowGroups: []string{"admins"}}, alice, Forbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Decide(tc.s, now); got != tc.want {
				t.Fatalf("Decide = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBypass(t *testing.T) {
	p := Policy{Bypass: []string{"/health", "/public/*", "/assets/*.css"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/health": true, "/healthz": false, "/public/": true, "/public/a/b": true, "/publicity": false,
		"/assets/site.css": true, "/assets/site.js": false, "/": false,
	} {
		if got := p.Bypassed(path); got != want {
			t.Errorf("Bypassed(%q) = %v, want %v", path, got, want)
		}
	}
	for _, bad := range []Policy{{Bypass: []string{"health"}}, {Bypass: []string{"/[x"}}, {MaxAge: -1}, {ACR: []string{"a b"}}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func TestHeaderStripping(t *testing.T) {
	h := Headers{User: "X-User", Email: "", Name: "Remote-Name", Groups: "Remote-Groups", ACR: "Remote-Acr", Assertion: "X-Auth-Jwt"}
	hdr := http.Header{}
	for _, k := range []string{"X-User", "x_user", "Remote-User", "Remote_User", "REMOTE-EMAIL", "Remote-Name", "remote_groups",
		"Remote-Acr", "X-Auth-Jwt", "X-Gatehouse-Assertion", "Accept", "Remote-Addr"} {
		hdr[k] = []string{"spoofed"}
	}
	strip(hdr, h.reserved())
	if len(hdr) != 2 || hdr.Get("Accept") == "" || hdr.Get("Remote-Addr") == "" {
		t.Fatalf("after strip: %v", hdr)
	}
	h.names().set(hdr, &Session{Username: "alice", Email: "a@example.com", Name: "Alice\r\nX-Evil: 1", Groups: []string{"a", "b"}, ACR: "2"})
	if hdr.Get("X-User") != "alice" || hdr.Get("Remote-Email") != "" || hdr.Get("Remote-Groups") != "a,b" ||
		hdr.Get("Remote-Name") != "AliceX-Evil: 1" || hdr.Get("Remote-Acr") != "2" {
		t.Fatalf("after set: %v", hdr)
	}
}

func TestSafeReturn(t *testing.T) {
	for _, ok := range []string{"", "/", "/a/b?c=d#e", "/%E2%9C%93", "/a//b"} {
		if _, good := SafeReturn(ok); !good {
			t.Errorf("refused %q", ok)
		}
	}
	for _, bad := range []string{"//evil", "https://evil", "http:evil", "evil", "/\\evil", "\\\\evil", "%2F%2Fevil", "/%2F%2Fevil",
		"/%5Cevil", "/%252F%252Fevil", "/\tevil", "/a\r\nb", "javascript:alert(1)", "/%0d%0aSet-Cookie:x"} {
		if _, good := SafeReturn(bad); good {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestIsNavigation(t *testing.T) {
	cases := []struct {
		h    map[string]string
		want bool
	}{
		{map[string]string{"Accept": "text/html,application/xhtml+xml"}, true},
		{map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}, true},
		{map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, false},
		{map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, false},
		{map[string]string{"Accept": "application/json"}, false},
		{map[string]string{}, false},
	}
	for _, c := range cases {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		for k, v := range c.h {
			r.Header.Set(k, v)
		}
		if got := isNavigation(r); got != c.want {
			t.Errorf("isNavigation(%v) = %v", c.h, got)
		}
	}
}

func TestOrigins(t *testing.T) {
	for in, want := range map[string]string{
		"http://App.Localhost:80": "http://app.localhost", "https://a.example:443": "https://a.example",
		"https://a.example:8443": "https://a.example:8443", "http://127.0.0.1:9000": "http://127.0.0.1:9000",
		"http://[::1]:8080": "http://[::1]:8080", "https://a.example/": "https://a.example",
	} {
		if got, err := CanonicalOrigin(in); err != nil || got != want {
			t.Errorf("CanonicalOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a.example", "ftp://a.example", "https://*.a.example", "https://a.example/x", "https://u@a.example",
		"https://a.example?x", "https://a.example:port", "https://a b.example"} {
		if got, err := CanonicalOrigin(bad); err == nil {
			t.Errorf("CanonicalOrigin(%q) = %q, want an error", bad, got)
		}
	}
	g := newTestGate(t, nil, Config{}, Site{Origins: []string{"http://app.localhost:9002", "https://app.example.com"}})
	for _, c := range []struct {
		host string
		tls  bool
		ok   bool
	}{
		{"app.localhost:9002", false, true}, {"APP.localhost:9002", false, true},
		{"app.localhost:4444", false, false}, {"app.localhost", false, false}, {"app.localhost:9002", true, false},
		{"app.example.com", true, true}, {"app.example.com:443", true, true}, {"app.example.com", false, false},
		{"app.example.com:8443", true, false}, {"evil.example", true, false}, {"app.example.com.evil.example", true, false},
		{"app.example.com@evil.example", true, false}, {"", false, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = c.host
		if !c.tls {
			r.TLS = nil
		} else {
			r.TLS = fakeTLS
		}
		if _, ok := g.site.Load().origin(r); ok != c.ok {
			t.Errorf("host %q tls=%v: served=%v, want %v", c.host, c.tls, ok, c.ok)
		}
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	g := newTestGate(t, st, Config{}, Site{})
	s := &Session{ID: "s1", Origin: "http://app.localhost", Subject: "u", Username: "alice", Expires: time.Now().Add(time.Hour)}
	g.save(ctx, s)
	rec := httptest.NewRecorder()
	g.cookies.set(rec, s.Origin, s.ID, time.Hour)
	st.Close() // the store is gone
	r := httptest.NewRequest(http.MethodGet, "http://app.localhost/", nil)
	r.Header.Set("Accept", "text/html")
	r.AddCookie(rec.Result().Cookies()[0])
	w := httptest.NewRecorder()
	if _, handled := g.Check(w, r); !handled || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("store down: handled=%v status %d, want a 503 page", handled, w.Code)
	}
}
