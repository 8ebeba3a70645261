package gate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
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
	h.set(hdr, &Session{Username: "alice", Email: "a@example.com", Name: "Alice\r\nX-Evil: 1", Groups: []string{"a", "b"}, ACR: "2"})
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

func TestHostAllowed(t *testing.T) {
	g := &Gate{cfg: Config{Hosts: []string{"app.example.com", "*.apps.example.com"}}}
	for host, want := range map[string]bool{
		"app.example.com": true, "APP.example.com:8443": true, "x.apps.example.com": true,
		"a.b.apps.example.com": false, "apps.example.com": false, "evil.com": false, "app.example.com.evil.com": false,
	} {
		if got := g.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v", host, got)
		}
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	ctx := context.Background()
	st, _ := embedded.Open(filepath.Join(t.TempDir(), "g.db"), embedded.Options{})
	sm, _ := session.NewManager(ctx, st, session.Options{})
	g, err := New(ctx, Config{Issuer: "http://idp.localhost", ClientID: "c", Store: st, Cookies: sm})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{ID: "s1", Host: "app.localhost", Subject: "u", Username: "alice", Expires: time.Now().Add(time.Hour)}
	g.save(ctx, s)
	rec := httptest.NewRecorder()
	g.cookies.set(rec, s.Host, s.ID, s.Expires)
	st.Close() // the store is gone
	r := httptest.NewRequest(http.MethodGet, "http://app.localhost/", nil)
	r.Header.Set("Accept", "text/html")
	r.AddCookie(rec.Result().Cookies()[0])
	w := httptest.NewRecorder()
	if _, handled := g.Check(w, r); !handled || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("store down: handled=%v status %d, want a 503 page", handled, w.Code)
	}
}
