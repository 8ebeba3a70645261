package provider_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The main flow against other set-ups: a host-only issuer (every endpoint
// at the root) and the in-memory store.
func TestFlowVariants(t *testing.T) {
	for _, setup := range []envSetup{
		{alg: "ES256", path: "", memory: true},
		{alg: "RS256", path: "", memory: false},
		{alg: "RS256", path: "/a/b", memory: true},
	} {
		name := setup.alg + "," + setup.path + map[bool]string{true: ",memory", false: ",embedded"}[setup.memory]
		t.Run(name, func(t *testing.T) {
			e := newEnvWith(t, setup)
			d := e.discovery()
			for k, p := range map[string]string{"authorization_endpoint": "/authorize", "token_endpoint": "/token",
				"userinfo_endpoint": "/userinfo", "jwks_uri": "/jwks", "end_session_endpoint": "/logout"} {
				if d[k] != e.issuer+p {
					t.Errorf("%s = %v, want %s", k, d[k], e.issuer+p)
				}
			}
			if d["issuer"] != e.issuer {
				t.Errorf("issuer %v", d["issuer"])
			}
			b := e.browser()
			resp, page := b.get(e.authURL(authParams("conf")))
			if resp.StatusCode != 200 || resp.Request.URL.Path != setup.path+"/login" {
				t.Fatalf("login page at %s (%d)", resp.Request.URL, resp.StatusCode)
			}
			if !strings.Contains(page, `href="`+setup.path+`/static/`) {
				t.Error("assets not below the issuer")
			}
			resp, page = b.submitLogin(resp, page, alicePassword)
			cb := callbackQuery(t, resp, page)
			if cb.Get("iss") != e.issuer || cb.Get("state") != "st-1" {
				t.Fatalf("callback %v", cb)
			}
			code := cb.Get("code")
			r, tok := e.token(codeForm(code), "conf", confSecret)
			if r.StatusCode != 200 {
				t.Fatalf("token %d %v", r.StatusCode, tok)
			}
			_, c := e.idTokenParts(tok["id_token"].(string), jose.SignatureAlgorithm(setup.alg), "conf")
			if c["sub"] != e.alice.Subject || c["nonce"] != "n-1" {
				t.Errorf("claims %v", c)
			}
			at := tok["access_token"].(string)
			if r, m := e.userinfo(at); r.StatusCode != 200 || m["sub"] != e.alice.Subject {
				t.Fatalf("userinfo %d %v", r.StatusCode, m)
			}
			// Replay revokes; SSO; code expiry on the store's clock.
			if r, m := e.token(codeForm(code), "conf", confSecret); r.StatusCode != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("replay %d %v", r.StatusCode, m)
			}
			if r, _ := e.userinfo(at); r.StatusCode != 401 {
				t.Fatalf("token of a replayed code: %d", r.StatusCode)
			}
			code = e.login(b, authParams("spa")).Get("code")
			e.clock.Advance(61 * time.Second)
			if r, m := e.token(with(codeForm(code), "client_id", "spa"), "", ""); r.StatusCode != 400 || m["error"] != "invalid_grant" {
				t.Fatalf("expired code %d %v", r.StatusCode, m)
			}
			if r, _ := b.get(e.issuer + "/static/gatehouse.css"); r.StatusCode != 200 {
				t.Errorf("static: %d", r.StatusCode)
			}
			if r, _ := b.get(e.issuer + "/nope"); r.StatusCode != http.StatusNotFound {
				t.Errorf("unknown path: %d", r.StatusCode)
			}
		})
	}
}

// The resume URL the chain sends the browser back to is bound to the
// browser that started the authorization, and works once.
func TestResumeBoundToBrowser(t *testing.T) {
	e := newEnv(t, "")
	a := e.browser()
	stop := a.c.CheckRedirect
	a.c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if strings.HasSuffix(r.URL.Path, "/authorize/resume") {
			return http.ErrUseLastResponse
		}
		return stop(r, via)
	}
	resp, page := a.get(e.authURL(authParams("conf")))
	resp, _ = a.submitLogin(resp, page, alicePassword)
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resume := resp.Request.URL.ResolveReference(mustURL(t, resp.Header.Get("Location"))).String()
	if !strings.Contains(resume, "/authorize/resume?") {
		t.Fatalf("login redirects to %s", resume)
	}
	// Another browser gets nothing: without a session an error; with
	// its own session (a mailed link finished there) only a page saying
	// it is signed in there, never the code.
	other := e.browser()
	e.login(other, authParams("conf"))
	resp, _ = e.browser().get(resume)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("resume from another browser: %d", resp.StatusCode)
	}
	noClientRedirect(t, resp)
	resp, page = other.get(resume)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "signed in in this browser") || strings.Contains(page, "code=") {
		t.Fatalf("resume from another signed-in browser: %d\n%s", resp.StatusCode, page)
	}
	noClientRedirect(t, resp)
	// The right browser gets its code, once.
	resp, page = a.get(resume)
	if cb := callbackQuery(t, resp, page); cb.Get("code") == "" || cb.Get("state") != "st-1" {
		t.Fatalf("callback %v", cb)
	}
	resp, _ = a.get(resume)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("second resume: %d", resp.StatusCode)
	}
	noClientRedirect(t, resp)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
