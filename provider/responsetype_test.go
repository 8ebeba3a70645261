package provider_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// fragmentOf returns the parameters of a redirect's fragment (and fails
// when the redirect carries any in its query).
func fragmentOf(t *testing.T, resp *http.Response, page string) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d at %s, want a redirect to the client:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != "app.example" {
		t.Fatalf("redirect to %q", resp.Header.Get("Location"))
	}
	if loc.RawQuery != "" {
		t.Fatalf("response parameters in the query: %s", loc)
	}
	v, err := url.ParseQuery(loc.Fragment)
	if err != nil {
		t.Fatalf("fragment %q: %v", loc.Fragment, err)
	}
	return v
}

func halfSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// consented signs alice in b and consents to everything tp asks for
// with scope openid profile, so later requests go straight through.
func (e *env) consented(b *browser) {
	e.t.Helper()
	_, page := e.toConsent(b, tpParams("openid profile"))
	resp, body := e.answer(b, page, "allow", "profile")
	callbackQuery(e.t, resp, body)
}

func TestResponseTypes(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.consented(b)
	for _, tc := range []struct {
		rt                   string
		code, token, idToken bool
	}{
		{"id_token", false, false, true},
		{"id_token token", false, true, true},
		{"token id_token", false, true, true},
		{"code id_token", true, false, true},
		{"code token", true, true, false},
		{"code id_token token", true, true, true},
		{"none", false, false, false},
	} {
		t.Run(tc.rt, func(t *testing.T) {
			q := with(tpParams("openid profile"), "response_type", tc.rt, "nonce", "n-"+strings.ReplaceAll(tc.rt, " ", "-"))
			resp, page := b.get(e.authURL(q))
			var v url.Values
			if tc.rt == "none" {
				v = callbackQuery(t, resp, page) // no tokens: the query is the default
			} else {
				v = fragmentOf(t, resp, page)
			}
			if v.Get("state") != "st-1" || v.Get("iss") != e.issuer || v.Get("session_state") == "" || v.Get("error") != "" {
				t.Fatalf("response %v", v)
			}
			if (v.Get("code") != "") != tc.code || (v.Get("access_token") != "") != tc.token || (v.Get("id_token") != "") != tc.idToken {
				t.Fatalf("response %v", v)
			}
			if tc.token {
				if v.Get("token_type") != "Bearer" || v.Get("expires_in") != "900" {
					t.Errorf("token response %v", v)
				}
				if r, info := e.userinfo(v.Get("access_token")); r.StatusCode != 200 || info["preferred_username"] != "alice" {
					t.Errorf("front-channel access token at userinfo: %d %v", r.StatusCode, info)
				}
			}
			if tc.idToken {
				_, c := e.idTokenParts(v.Get("id_token"), jose.RS256, "tp")
				if c["nonce"] != q.Get("nonce") {
					t.Errorf("nonce %v", c["nonce"])
				}
				if tc.token && c["at_hash"] != halfSHA256(v.Get("access_token")) || !tc.token && c["at_hash"] != nil {
					t.Errorf("at_hash %v", c["at_hash"])
				}
				if tc.code && c["c_hash"] != halfSHA256(v.Get("code")) || !tc.code && c["c_hash"] != nil {
					t.Errorf("c_hash %v", c["c_hash"])
				}
			}
			if tc.code {
				tok := e.redeem("tp", "tp-secret", v)
				_, c := e.idTokenParts(str(tok, "id_token"), jose.RS256, "tp")
				if c["nonce"] != q.Get("nonce") {
					t.Errorf("code's ID token nonce %v", c["nonce"])
				}
			}
		})
	}
}

func TestResponseTypeErrors(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.consented(b)
	// Implicit and hybrid need a nonce; the error goes to the fragment.
	for _, rt := range []string{"id_token", "id_token token", "code id_token", "code token"} {
		q := without(with(tpParams("openid"), "response_type", rt), "nonce")
		v := e.fragment(b, e.authURL(q))
		if v.Get("error") != "invalid_request" || !strings.Contains(v.Get("error_description"), "nonce") || v.Get("state") != "st-1" {
			t.Errorf("%s without nonce: %v", rt, v)
		}
	}
	// Tokens never go in the query.
	v := e.fragment(b, e.authURL(with(tpParams("openid"), "response_type", "id_token", "response_mode", "query")))
	if v.Get("error") != "invalid_request" {
		t.Errorf("id_token in the query: %v", v)
	}
	// A response type the client may not use.
	v = e.fragment(b, e.authURL(with(authParams("conf"), "response_type", "id_token token")))
	if v.Get("error") != "unauthorized_client" {
		t.Errorf("conf asking for id_token token: %v", v)
	}
	// A code in the fragment when asked.
	v = e.fragment(b, e.authURL(with(tpParams("openid profile"), "response_mode", "fragment")))
	if v.Get("code") == "" {
		t.Errorf("code with response_mode=fragment: %v", v)
	}
}

var formPostField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

func TestFormPost(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.consented(b)
	for _, rt := range []string{"code", "code id_token", "id_token token"} {
		q := with(tpParams("openid profile"), "response_type", rt, "response_mode", "form_post")
		resp, page := b.get(e.authURL(q))
		if resp.StatusCode != 200 {
			t.Fatalf("%s form_post: %d %s", rt, resp.StatusCode, resp.Header.Get("Location"))
		}
		if m := formAction.FindStringSubmatch(page); m == nil || html.UnescapeString(m[1]) != redirectURI {
			t.Fatalf("%s form_post posts to %v:\n%s", rt, m, page)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "form-action https://app.example") || !strings.Contains(csp, "script-src 'self'") ||
			resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("form_post headers: %v", resp.Header)
		}
		if !strings.Contains(page, `<button type="submit">`) || !strings.Contains(page, "/form_post.js") {
			t.Errorf("form_post page lacks the button or the script:\n%s", page)
		}
		v := url.Values{}
		for _, m := range formPostField.FindAllStringSubmatch(page, -1) {
			v.Set(m[1], html.UnescapeString(m[2]))
		}
		if v.Get("state") != "st-1" || v.Get("iss") != e.issuer || strings.Contains(rt, "code") != (v.Get("code") != "") {
			t.Errorf("%s form_post fields %v", rt, v)
		}
		if strings.Contains(rt, "code") {
			e.redeem("tp", "tp-secret", v)
		}
	}
	// Errors travel by form_post too.
	q := with(tpParams("openid"), "response_mode", "form_post", "prompt", "bogus")
	_, page := b.get(e.authURL(q))
	if !strings.Contains(page, `name="error" value="invalid_request"`) {
		t.Errorf("form_post error:\n%s", page)
	}
	// The script is served.
	if resp, _ := b.get(e.issuer + "/static/form_post.js"); resp.StatusCode != 200 {
		t.Errorf("form_post.js: %d", resp.StatusCode)
	}
}

// fragment gets u in b and returns the fragment parameters of the
// redirect to the client.
func (e *env) fragment(b *browser, u string) url.Values {
	e.t.Helper()
	resp, page := b.get(u)
	return fragmentOf(e.t, resp, page)
}
