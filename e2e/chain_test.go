package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const chainCaddyfile = `{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %[1]s
		dev
		chain {
			password {
				levels 1
			}
			totp {
				levels 2
				after password
				remember persistent 720h
			}
		}
	}
}

%[1]s {
	gatehouse_idp
}

%[2]s {
	gatehouse_gate {
		header assertion X-Assertion
	}
	route /admin/* {
		gatehouse_gate {
			acr 2
		}
	}
	reverse_proxy %[3]s
}
`

var totpSecretRE = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)

func totpCode(t *testing.T, secret string, at time.Time) string {
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertionClaims decodes the (already verified elsewhere) assertion.
func assertionClaims(t *testing.T, raw string) map[string]any {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q", raw)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

func amrOf(c map[string]any) []string {
	var out []string
	for _, v := range c["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// newChainSetup runs chainCaddyfile: password then TOTP, /admin/ at 2.
func newChainSetup(t *testing.T) *gateSetup {
	up := echoUpstream(t)
	s := &gateSetup{idpSetup: &idpSetup{authPort: freePort(t)}}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.app = fmt.Sprintf("http://app.localhost:%d", freePort(t))
	s.caddy = startCaddy(t, fmt.Sprintf(chainCaddyfile, s.issuer, s.app, strings.TrimPrefix(up.URL, "http://")))
	s.addUser(t, "alice", "correct horse battery")
	return s
}

func TestChainPasswordThenTOTP(t *testing.T) {
	s := newChainSetup(t)
	b := newBrowser(t)

	// Password only: level 1 (TOTP is not asked of a user who has none).
	_, _, echo := s.visit(t, b, s.app+"/", nil)
	if echo == nil || echo["Remote-Acr"] != "1" {
		t.Fatalf("password login: %v", echo)
	}
	if amr := amrOf(assertionClaims(t, echo["X-Assertion"])); !slices.Equal(amr, []string{"pwd"}) {
		t.Fatalf("amr %v", amr)
	}

	// The admin area needs level 2: only TOTP is asked (enrolment first).
	resp, page := b.get(s.app + "/admin/")
	if strings.Contains(page, `name="password"`) || !strings.Contains(page, "Set up two-step verification") {
		t.Fatalf("step-up page (%d):\n%s", resp.StatusCode, page)
	}
	secret := totpSecretRE.FindStringSubmatch(page)[1]
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"code": {"000000"}})
	if !strings.Contains(page, "Wrong code") {
		t.Fatalf("wrong enrolment code: %d", resp.StatusCode)
	}
	// "Trust this browser" is a choice, unticked by default.
	if !strings.Contains(page, `name="remember"`) || strings.Contains(page, "checked") {
		t.Fatalf("no unticked trust box on the TOTP page:\n%s", page)
	}
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"code": {totpCode(t, secret, time.Now())}, "remember": {"on"}})
	var echo2 map[string]string
	json.Unmarshal([]byte(page), &echo2)
	if echo2["Remote-Acr"] != "2" || echo2["_path"] != "/admin/" {
		t.Fatalf("after TOTP: %d %s", resp.StatusCode, page)
	}
	if amr := amrOf(assertionClaims(t, echo2["X-Assertion"])); !slices.Equal(amr, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("amr after TOTP %v", amr)
	}

	// Same device, new sessions (SSO and gate cookies gone, the trusted
	// device cookie kept): the password suffices, TOTP is remembered.
	authURL, _ := url.Parse(s.issuer)
	device := b.cookie(s.issuer, "gatehouse-device")
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(authURL, []*http.Cookie{device})
	b.client.Jar = jar
	_, page, echo = s.visit(t, b, s.app+"/admin/x", nil)
	if echo == nil || echo["Remote-Acr"] != "2" {
		t.Fatalf("remembered device: TOTP asked again?\n%s", page)
	}

	// Another device: TOTP is asked (a code, no enrolment now).
	nb := newBrowser(t)
	resp, page = nb.get(s.app + "/")
	resp, page = nb.submitLogin(resp.Request.URL.String(), page, "alice", "correct horse battery")
	if !strings.Contains(page, "Two-step verification") || strings.Contains(page, "Set up") {
		t.Fatalf("new device after password: %d\n%s", resp.StatusCode, page)
	}
	// Wait for a new time step (the enrolment code's step is used up).
	time.Sleep(time.Until(time.Now().Truncate(30 * time.Second).Add(30 * time.Second)))
	resp, page = nb.submitForm(resp.Request.URL.String(), page, url.Values{"code": {totpCode(t, secret, time.Now())}})
	json.Unmarshal([]byte(page), &echo)
	if echo["Remote-Acr"] != "2" {
		t.Fatalf("TOTP on new device: %d %s", resp.StatusCode, page)
	}

	// A password change voids the trusted device.
	if out, err := s.caddy.cli("new password here\n", "user", "passwd", "alice", "--password-stdin"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	jar, _ = cookiejar.New(nil)
	jar.SetCookies(authURL, []*http.Cookie{device})
	b.client.Jar = jar
	resp, page = b.get(s.app + "/")
	resp, page = b.submitLogin(resp.Request.URL.String(), page, "alice", "new password here")
	if !strings.Contains(page, "Two-step verification") {
		t.Fatalf("trusted device survived a password change: %d\n%s", resp.StatusCode, page)
	}
}
