package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fedSetup is a Gatehouse ("ours") whose chain has a password module and
// an oidc module "Corp" against a second Gatehouse in another Caddy (the
// corporate IdP), and a site gated by ours (/admin/* needs level 2,
// which the corporate IdP's acr "2" reaches).
type fedSetup struct {
	corp, ours         *caddy
	corpIssuer, issuer string
	app                string
}

func newFedSetup(t *testing.T) *fedSetup {
	up := echoUpstream(t)
	corpPort, ourPort, appPort := freePort(t), freePort(t), freePort(t)
	s := &fedSetup{
		corpIssuer: fmt.Sprintf("http://127.0.0.1:%d", corpPort),
		issuer:     fmt.Sprintf("http://localhost:%d", ourPort),
		app:        fmt.Sprintf("http://app.localhost:%d", appPort),
	}
	s.corp = startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		chain {
			password {
				levels 1
			}
			second {
				kind password
				levels 2
				after password
				show_only_when_needed
			}
		}
		client gatehouse {
			first_party
			secret corp-secret
			redirect_uri %[2]s/login/m/Corp/callback
			backchannel_logout_uri %[2]s/login/m/Corp/backchannel_logout
		}
	}
}
%[1]s {
	gatehouse_idp
}
`, s.corpIssuer, s.issuer))
	for _, u := range [][2]string{{"carol", "carol@corp.example"}, {"alice", "alice@example.com"}} {
		if out, err := s.corp.cli("corp password one\n", "user", "add", u[0], "--email", u[1], "--email-verified", "--password-stdin"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	s.ours = startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		chain {
			password {
				levels 1
			}
			Corp {
				kind oidc
				levels 1 2
				issuer %[2]s
				client_id gatehouse
				client_secret {env.CORP_TEST_SECRET}
				acr_levels 2=2
				accounts create
				logout_upstream
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
	route /admin/* {
		gatehouse_gate {
			acr 2
			cache_ttl 1s
		}
	}
	reverse_proxy %[4]s
}
`, s.issuer, s.corpIssuer, s.app, strings.TrimPrefix(up.URL, "http://")))
	if out, err := s.ours.cli("correct horse battery\n", "user", "add", "alice", "--email", "alice@example.com", "--email-verified", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	return s
}

// signInPasswords answers every password form on the way with pw
// (a corporate sign-in and its step-up) until the page is no form.
func signInPasswords(t *testing.T, b *browser, resp *http.Response, page, user, pw string) (*http.Response, string) {
	t.Helper()
	for i := 0; i < 4 && strings.Contains(page, `name="password"`); i++ {
		resp, page = b.submitLogin(resp.Request.URL.String(), page, user, pw)
	}
	return resp, page
}

// viaCorp opens u in b, takes the Corp button (or the Corp page when it
// is the only way), and signs in at the corporate IdP as user.
func (s *fedSetup) viaCorp(t *testing.T, b *browser, u, user string) (*http.Response, string) {
	t.Helper()
	resp, page := b.get(u)
	if !strings.Contains(page, `name="module" value="Corp"`) {
		resp, page = choose(t, b, resp.Request.URL.String(), page, "Corp")
	}
	resp, page = b.submitForm(resp.Request.URL.String(), page, nil)
	if !strings.HasPrefix(resp.Request.URL.String(), s.corpIssuer) {
		t.Fatalf("not at the corporate IdP: %s\n%s", resp.Request.URL, page)
	}
	resp, page = signInPasswords(t, b, resp, page, user, "corp password one")
	if strings.Contains(page, `"error":"login_required"`) {
		// The last redirect came from a posted form, so it does not say
		// it takes HTML: the gate answered as to a script. A browser
		// navigating there again is sent on.
		resp, page = b.get(u)
	}
	return resp, page
}

func echoOf(t *testing.T, resp *http.Response, body string) map[string]string {
	t.Helper()
	var echo map[string]string
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(body), &echo) != nil {
		t.Fatalf("not the upstream (%d %s):\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	return echo
}

// TestFederationWithCorporateIdP: a person signs in to a gated site
// through another Gatehouse; their account is made at the first
// sign-in; a route asking level 2 sends them to the corporate IdP for
// its level 2 (acr 2 mapped to ours); the corporate IdP's back-channel
// logout ends the sessions here; an address that is a local account's
// links only after that account's password.
func TestFederationWithCorporateIdP(t *testing.T) {
	t.Setenv("CORP_TEST_SECRET", "corp-secret")
	s := newFedSetup(t)

	// Just in time: carol has no account here before.
	b := newBrowser(t)
	resp, body := s.viaCorp(t, b, s.app+"/x", "carol")
	echo := echoOf(t, resp, body)
	if echo["Remote-User"] != "carol" || echo["Remote-Email"] != "carol@corp.example" || echo["Remote-Acr"] != "1" {
		t.Fatalf("JIT sign-in: %v", echo)
	}
	if out, err := s.ours.cli("", "user", "list"); err != nil || !strings.Contains(out, "carol") {
		t.Fatalf("no account for carol: %v %s", err, out)
	}

	// Level 2: asked of the corporate IdP (its second password), mapped.
	// Signed in at level 1 first (the site's gate), the route's level 2
	// offers the corporate IdP again.
	b2 := newBrowser(t)
	s.viaCorp(t, b2, s.app+"/x", "carol")
	resp, body = s.viaCorp(t, b2, s.app+"/admin/x", "carol")
	if echo := echoOf(t, resp, body); echo["Remote-User"] != "carol" || echo["Remote-Acr"] != "2" {
		t.Fatalf("acr 2 through the corporate IdP: %v", echo)
	}

	// The corporate IdP ends carol's sessions: its back-channel logout
	// ends the sessions here that came from it, gates included.
	if out, err := s.corp.cli("", "session", "revoke", "--user", "carol"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, body = b.get(s.app + "/x")
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still signed in after the corporate logout\nours:\n%s\ncorp:\n%s", s.ours.log, s.corp.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(s.ours.log.String(), `"event":"upstream_logout"`) {
		t.Fatalf("no upstream_logout in the trail:\n%s", s.ours.log)
	}

	// Corp's alice has the address of the local alice: no sign-in as
	// her until her password here is given; then linked.
	b3 := newBrowser(t)
	resp, body = s.viaCorp(t, b3, s.app+"/x", "alice")
	if !strings.Contains(html.UnescapeString(body), "An account here already has the address alice@example.com") {
		t.Fatalf("takeover by address not refused (%d %s):\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	resp, body = choose(t, b3, resp.Request.URL.String(), body, "password")
	resp, body = b3.submitLogin(resp.Request.URL.String(), body, "alice", "correct horse battery")
	if echo := echoOf(t, resp, body); echo["Remote-User"] != "alice" {
		t.Fatalf("after proof: %v", echo)
	}
	b4 := newBrowser(t)
	resp, body = s.viaCorp(t, b4, s.app+"/x", "alice")
	if echo := echoOf(t, resp, body); echo["Remote-User"] != "alice" {
		t.Fatalf("linked sign-in: %v", echo)
	}
	if !strings.Contains(s.ours.log.String(), `"event":"link_refused"`) || !strings.Contains(s.ours.log.String(), "proven by signing in to the account") {
		t.Fatalf("trail lacks the refusal and the link:\n%s", s.ours.log)
	}

	// Signing out here offers signing out at the corporate IdP too
	// (logout_upstream), which ends the session there.
	resp, page := b4.get(s.issuer + "/logout")
	resp, page = b4.submitForm(resp.Request.URL.String(), page, nil)
	up := regexp.MustCompile(`<a class="button" href="([^"]+)">Sign out of Corp too</a>`).FindStringSubmatch(page)
	if up == nil || !strings.HasPrefix(html.UnescapeString(up[1]), s.corpIssuer+"/logout?client_id=gatehouse") {
		t.Fatalf("signed-out page (%d):\n%s", resp.StatusCode, page)
	}
	resp, page = b4.get(html.UnescapeString(up[1]))
	resp, page = b4.submitForm(resp.Request.URL.String(), page, nil)
	if !strings.Contains(page, "You are signed out") {
		t.Fatalf("corporate sign-out (%d %s):\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if _, page = b4.get(s.corpIssuer + "/account"); !strings.Contains(page, `name="password"`) {
		t.Fatalf("still signed in at the corporate IdP:\n%s", page)
	}
}

// TestFederationAccountLinking: on the account page a signed-in user
// links their corporate identity (which then signs in to their account)
// and removes it again (after which it is someone new here).
func TestFederationAccountLinking(t *testing.T) {
	t.Setenv("CORP_TEST_SECRET", "corp-secret")
	s := newFedSetup(t)
	b := newBrowser(t)
	resp, page := b.get(s.issuer + "/account")
	resp, page = choose(t, b, resp.Request.URL.String(), page, "password")
	resp, page = b.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery")
	if !strings.Contains(page, "Link your Corp account") {
		t.Fatalf("account page (%d %s):\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	add := regexp.MustCompile(`<a class="button" href="([^"]+)">Link your Corp account</a>`).FindStringSubmatch(page)
	resp, page = b.get(s.issuer + html.UnescapeString(add[1]))
	resp, page = b.submitForm(resp.Request.URL.String(), page, nil)
	resp, page = signInPasswords(t, b, resp, page, "carol", "corp password one")
	if !strings.HasPrefix(resp.Request.URL.String(), s.issuer+"/account") || !strings.Contains(page, "carol@corp.example") {
		t.Fatalf("after linking (%d %s):\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	// Carol's corporate sign-in is alice's account now.
	resp, body := s.viaCorp(t, newBrowser(t), s.app+"/x", "carol")
	if echo := echoOf(t, resp, body); echo["Remote-User"] != "alice" {
		t.Fatalf("linked sign-in: %v", echo)
	}

	// Remove it (alice keeps her password).
	item := regexp.MustCompile(`name="item" value="([^"]+)"`).FindStringSubmatch(page)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if item == nil || csrf == nil {
		t.Fatalf("no remove form:\n%s", page)
	}
	resp, page = b.postForm(s.issuer+"/account", url.Values{"csrf": {html.UnescapeString(csrf[1])}, "module": {"Corp"},
		"item": {html.UnescapeString(item[1])}, "action": {"remove"}})
	if resp.StatusCode != http.StatusOK || strings.Contains(page, "carol@corp.example") || !strings.Contains(page, "Link your Corp account") {
		t.Fatalf("after removing (%d %s):\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	resp, body = s.viaCorp(t, newBrowser(t), s.app+"/x", "carol")
	if echo := echoOf(t, resp, body); echo["Remote-User"] != "carol" {
		t.Fatalf("unlinked identity: %v", echo)
	}
	if log := s.ours.log.String(); !strings.Contains(log, `"event":"credential_added"`) || !strings.Contains(log, `"event":"credential_removed"`) {
		t.Fatalf("trail:\n%s", log)
	}
}
