package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// fuzzProvider is a provider for parser fuzzing (no HTTP server).
func fuzzProvider(f testing.TB) *Provider { return testProvider(f, "https://idp.example", "") }

// testProvider is a provider without an HTTP server, for internal tests.
func testProvider(f testing.TB, issuer, hsts string) *Provider {
	ctx := context.Background()
	st := memstore.New()
	f.Cleanup(func() { st.Close() })
	sessions, err := session.NewManager(ctx, st, session.Options{})
	if err != nil {
		f.Fatal(err)
	}
	dir := users.New(st, nil)
	clients, err := NewClients(st, []Client{{ID: "conf", Secret: "s", RedirectURIs: []string{"https://app.example/cb"}}})
	if err != nil {
		f.Fatal(err)
	}
	keys, err := NewKeys(ctx, st, RS256, time.Hour, nil)
	if err != nil {
		f.Fatal(err)
	}
	lo, err := logout.New(logout.Config{Store: st, Sessions: sessions,
		Queue: logout.NewQueue(logout.QueueConfig{Store: st, Issuer: issuer, Signer: keys})})
	if err != nil {
		f.Fatal(err)
	}
	engine, err := chain.New(chain.DefaultConfig(), chain.Options{Store: st, Sessions: sessions, Users: dir, Logout: lo, LoginPath: "/login"})
	if err != nil {
		f.Fatal(err)
	}
	p, err := New(Config{Issuer: issuer, Store: st, Users: dir, Clients: clients, Keys: keys, Sessions: sessions, Chain: engine, Logout: lo, HSTS: hsts})
	if err != nil {
		f.Fatal(err)
	}
	return p
}

// FuzzIDTokenHint: verifyHint never panics, and whatever it accepts names
// the subject and session of an ID token this provider signed for a
// registered client.
func FuzzIDTokenHint(f *testing.F) {
	p := fuzzProvider(f)
	now := time.Now()
	idToken, err := p.cfg.Keys.SignClaims(idTokenType, map[string]any{"iss": p.cfg.Issuer, "sub": "alice", "aud": "conf",
		"sid": "sid-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if err != nil {
		f.Fatal(err)
	}
	assertion, _ := p.cfg.Keys.SignClaims("gatehouse-assertion+jwt", map[string]any{"iss": p.cfg.Issuer, "sub": "alice",
		"aud": "https://app.example", "sid": "sid-1"})
	f.Add(idToken)
	f.Add(assertion)
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := p.verifyHint(context.Background(), raw)
		if err != nil {
			return
		}
		if h.Subject != "alice" || h.SID != "sid-1" || len(h.Audience) != 1 || h.Audience[0] != "conf" {
			t.Fatalf("accepted a hint naming %+v", h)
		}
	})
}

// HSTS is sent by an https issuer only (over http it would pin a
// development host).
func TestHSTS(t *testing.T) {
	for issuer, want := range map[string]string{"https://idp.example": "max-age=31536000", "http://localhost:9000": ""} {
		p := testProvider(t, issuer, "max-age=31536000")
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
		if got := w.Header().Get("Strict-Transport-Security"); got != want {
			t.Errorf("%s: HSTS %q, want %q", issuer, got, want)
		}
	}
}

func TestOriginOfIsTheBrowsersOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://rp.example:443/cb":     "https://rp.example",
		"HTTPS://RP.Example/cb?x=1":     "https://rp.example",
		"http://rp.example:80/":         "http://rp.example",
		"http://rp.example:8080/cb":     "http://rp.example:8080",
		"https://rp.example:80/cb":      "https://rp.example:80",
		"http://[::1]:80/cb":            "http://[::1]",
		"http://[::1]:9000/cb":          "http://[::1]:9000",
		"com.example.app:/oauth2redir":  "",
		"https://user:pw@rp.example/cb": "https://rp.example",
	} {
		if got := originOf(in); got != want {
			t.Errorf("originOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzOriginOf(f *testing.F) {
	f.Add("https://rp.example:443/cb")
	f.Add("http://[::1]:80/x")
	f.Fuzz(func(t *testing.T, raw string) {
		o := originOf(raw)
		if o == "" {
			return
		}
		// An origin is its own origin, and has no path, query or fragment.
		if again := originOf(o + "/"); again != o {
			t.Fatalf("originOf(%q) = %q, but originOf(%q/) = %q", raw, o, o, again)
		}
	})
}

func FuzzClaimsRequest(f *testing.F) {
	f.Add(`{"userinfo":{"email":null,"address":{"essential":true}},"id_token":{"acr":{"values":["2","1"]}}}`)
	f.Add(`{"id_token":{"acr":{"value":"2","essential":true}}}`)
	f.Add(`{"userinfo":[]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := parseClaimsRequest(raw)
		if err != nil {
			return
		}
		names := c.userClaims()
		if len(names) > maxRequestedClaims {
			t.Fatalf("%d claims kept", len(names))
		}
		for _, n := range names {
			if protocolClaims[n] || n == "" || len(n) > 64 {
				t.Fatalf("claim %q kept as a user claim", n)
			}
		}
		// keep only ever narrows.
		k := c.keep(nil)
		if got := k.userClaims(); len(got) != 0 {
			t.Fatalf("keep(nil) kept %v", got)
		}
		c.acr()
	})
}

func FuzzResponseType(f *testing.F) {
	for _, rt := range supportedResponseTypes {
		f.Add(rt)
	}
	f.Add("token code id_token")
	f.Add("code code")
	f.Fuzz(func(t *testing.T, raw string) {
		n, ok := normalResponseType(raw)
		if !ok {
			return
		}
		if again, ok2 := normalResponseType(n); !ok2 || again != n {
			t.Fatalf("%q normalises to %q, which normalises to %q", raw, n, again)
		}
		rt := parseResponseType(n)
		if n != "none" && !rt.code && !rt.idToken && !rt.token {
			t.Fatalf("%q asks for nothing", raw)
		}
		// A response type with tokens never defaults to the query.
		if rt.frontChannelTokens() && responseModeOf(url.Values{"response_type": {raw}}) == modeQuery {
			t.Fatalf("%q defaults to the query", raw)
		}
	})
}
