package e2e

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// opForm reads a form of oidc-provider's pages: its action and hidden
// fields (written <input ... />).
var (
	opAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	opHidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"\s*/?>`)
)

func opSubmit(t *testing.T, b *browser, resp *http.Response, page string, fields url.Values) (*http.Response, string) {
	t.Helper()
	m := opAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form at %s:\n%s", resp.Request.URL, page)
	}
	action, _ := url.Parse(html.UnescapeString(m[1]))
	for _, h := range opHidden.FindAllStringSubmatch(page, -1) {
		fields.Set(h[1], html.UnescapeString(h[2]))
	}
	return b.postForm(resp.Request.URL.ResolveReference(action).String(), fields)
}

// TestFederationWithOIDCProviderNPM signs in to a gated site through
// npm oidc-provider (a certified OpenID provider) and has its
// back-channel logout end the session here.
func TestFederationWithOIDCProviderNPM(t *testing.T) {
	up := echoUpstream(t)
	opPort, ourPort, appPort := freePort(t), freePort(t), freePort(t)
	opIssuer := fmt.Sprintf("http://127.0.0.1:%d", opPort)
	issuer := fmt.Sprintf("http://localhost:%d", ourPort)
	app := fmt.Sprintf("http://app.localhost:%d", appPort)
	startNodeRP(t, "op.mjs", strconv.Itoa(opPort), "gatehouse", "np-secret", issuer+"/login/m/NP/callback", issuer+"/login/m/NP/backchannel_logout").ready()
	ours := startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		chain {
			password {
				levels 1
			}
			NP {
				kind oidc
				levels 1
				issuer %[2]s
				client_id gatehouse
				client_secret np-secret
				accounts create
				label "Node provider"
			}
		}
	}
}
%[1]s {
	gatehouse_idp
}
%[3]s {
	gatehouse_gate {
		cache_ttl 1s
	}
	reverse_proxy %[4]s
}
`, issuer, opIssuer, app, strings.TrimPrefix(up.URL, "http://")))

	b := newBrowser(t)
	resp, page := b.get(app + "/x")
	resp, page = choose(t, b, resp.Request.URL.String(), page, "Node provider")
	resp, page = b.submitForm(resp.Request.URL.String(), page, nil)
	// oidc-provider's development pages: the login, then the consent.
	for i := 0; i < 3 && strings.HasPrefix(resp.Request.URL.String(), opIssuer); i++ {
		f := url.Values{}
		if strings.Contains(page, `name="login"`) {
			f.Set("login", "nora")
			f.Set("password", "anything")
		}
		resp, page = opSubmit(t, b, resp, page, f)
	}
	if strings.Contains(page, `"error":"login_required"`) {
		resp, page = b.get(app + "/x")
	}
	echo := echoOf(t, resp, page)
	if echo["Remote-User"] != "nora" || echo["Remote-Email"] != "nora@np.example" || echo["Remote-Name"] != "nora (np)" {
		t.Fatalf("signed in through oidc-provider: %v", echo)
	}

	// Sign-out at oidc-provider (its confirmation page): its
	// back-channel logout token ends the session here.
	resp, page = b.get(opIssuer + "/session/end")
	resp, page = opSubmit(t, b, resp, page, url.Values{"logout": {"yes"}})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, page = b.get(app + "/x")
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still signed in after oidc-provider's logout")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(ours.log.String(), `"event":"upstream_logout"`) || strings.Contains(ours.log.String(), `"event":"logout_token_refused"`) {
		t.Fatalf("trail:\n%s", ours.log)
	}
}
