package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/internal/slapdtest"
)

// An LDAP person signs in at an OpenID client and through a gate (their
// LDAP groups reach Remote-Groups), is read-only for the admin, and can
// no longer sign in (nor refresh) once disabled in LDAP; with LDAP down
// the sign-in page says so at once.
func TestLDAPUserSource(t *testing.T) {
	srv := slapdtest.Start(t)
	srv.Add(t, "cn=reader,"+slapdtest.Base, map[string][]string{
		"objectClass": {"organizationalRole", "simpleSecurityObject"}, "cn": {"reader"}, "userPassword": {"reader-secret"}})
	const pw = "carol's ldap password 7"
	carol := srv.AddUser(t, "carol", pw, "carol@acme.test", "Carol Lee")
	srv.AddGroup(t, "staff", carol)
	srv.AddGroup(t, "ops", carol)
	t.Setenv("GATEHOUSE_TEST_LDAP_PASSWORD", "reader-secret")

	extra := fmt.Sprintf(`users ldap {
			url %s
			start_tls
			ca_file %s
			bind_dn cn=reader,%s
			bind_password {env.GATEHOUSE_TEST_LDAP_PASSWORD}
			base_dn %s
			user_filter "(&(objectClass=inetOrgPerson)(!(employeeType=disabled))(|(uid={login})(mail={login})))"
			attributes {
				groups memberOf
			}
			email_verified
			timeout 2s
			recheck 1s
		}`, srv.URL, srv.CAFile, slapdtest.Base, srv.People)
	s, gated := newGatedIDP(t, extra, "cache_ttl 1s")

	// The OpenID client: carol signs in with her LDAP password.
	rp := s.client(t)
	rp.conf.Scopes = append(rp.conf.Scopes, oidc.ScopeOfflineAccess)
	b := newBrowser(t, s.appHost)
	verifier := oauth2.GenerateVerifier()
	q := s.authorize(t, b, rp.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "carol", pw)
	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(rp.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Email    string `json:"email"`
		Verified bool   `json:"email_verified"`
		Name     string `json:"name"`
		Username string `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Email != "carol@acme.test" || !claims.Verified || claims.Name != "Carol Lee" || claims.Username != "carol" {
		t.Fatalf("ID token claims %+v %v", claims, err)
	}
	if ui, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok)); err != nil || ui.Email != "carol@acme.test" {
		t.Fatalf("userinfo: %v %+v", err, ui)
	}
	if ok := findAudit(t, s.caddy, "login_succeeded", map[string]string{"user": "carol"}); len(ok) == 0 || !strings.Contains(fmt.Sprint(ok[0]["reason"]), "user source: ldap") {
		t.Fatalf("login_succeeded does not name the source: %v", ok)
	}
	wrong := newBrowser(t, s.appHost)
	resp, page := wrong.get(rp.conf.AuthCodeURL("st1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if _, page = wrong.submitLogin(resp.Request.URL.String(), page, "carol", "not carol's password"); !strings.Contains(page, "Wrong username or password") {
		t.Fatalf("a wrong LDAP password:\n%s", page)
	}
	if bad := findAudit(t, s.caddy, "login_failed", map[string]string{"user": "carol"}); len(bad) == 0 || !strings.Contains(fmt.Sprint(bad[0]["reason"]), "user source: ldap") {
		t.Fatalf("login_failed does not name the source: %v", bad)
	}

	// Through a gate, in another browser: LDAP's groups reach the upstream.
	gb := newBrowser(t, "never-stop")
	resp, page = gb.get(gated + "/page")
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("the gate did not ask to sign in: %d\n%s", resp.StatusCode, page)
	}
	resp, page = gb.submitLogin(resp.Request.URL.String(), page, "carol@acme.test", pw)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `"Remote-User":"carol"`) ||
		!strings.Contains(page, `"Remote-Groups":"staff,ops"`) && !strings.Contains(page, `"Remote-Groups":"ops,staff"`) {
		t.Fatalf("upstream saw %d:\n%s", resp.StatusCode, page)
	}

	// Read-only for the admin; listed with its source.
	if out, err := s.caddy.cli("", "user", "groups", "carol", "admins"); err == nil || !strings.Contains(out, "comes from the user source \"ldap\" and is read-only") {
		t.Fatalf("user groups on an LDAP account: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("a new password for carol 1\n", "user", "passwd", "carol", "--password-stdin"); err == nil || !strings.Contains(out, "read-only") {
		t.Fatalf("user passwd on an LDAP account: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "user", "list"); err != nil || !strings.Contains(out, "SOURCE") || !strings.Contains(out, " ldap ") {
		t.Fatalf("user list: %v\n%s", err, out)
	}

	// Disabled in LDAP: the gate session ends at its next refresh, the
	// refresh token is refused, a new sign-in fails.
	srv.Replace(t, carol, "employeeType", "disabled")
	time.Sleep(2500 * time.Millisecond) // past the gate cache (1s) and the recheck (1s)
	if resp, page := gb.get(gated + "/page"); strings.Contains(page, `"Remote-User":"carol"`) {
		t.Fatalf("the gate still lets carol in: %d\n%s", resp.StatusCode, page)
	}
	if _, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("userinfo still answers for carol's access token")
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	if _, err := rp.conf.TokenSource(rp.ctx, &expired).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("refresh after disabling: %v, want invalid_grant", err)
	}
	// The browser still holding carol's SSO session gets no code: it is
	// asked to sign in again.
	if resp, page := b.get(rp.conf.AuthCodeURL("st-sso", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); resp.StatusCode != http.StatusOK ||
		!strings.Contains(page, `name="password"`) {
		t.Fatalf("carol's SSO session after disabling: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	fresh := newBrowser(t, s.appHost)
	resp, page = fresh.get(rp.conf.AuthCodeURL("st2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if _, page = fresh.submitLogin(resp.Request.URL.String(), page, "carol", pw); !strings.Contains(page, "Wrong username or password") {
		t.Fatalf("a disabled LDAP account signed in:\n%s", page)
	}

	// LDAP down: a readable page, fast.
	srv.Stop()
	down := newBrowser(t, s.appHost)
	resp, page = down.get(rp.conf.AuthCodeURL("st3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	start := time.Now()
	resp, page = down.submitLogin(resp.Request.URL.String(), page, "dave", "some password 12")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "not available right now") || time.Since(start) > 5*time.Second {
		t.Fatalf("LDAP down: %d after %v\n%s", resp.StatusCode, time.Since(start), page)
	}
}
