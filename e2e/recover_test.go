package e2e

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Password forgotten and magic links end to end: a real Caddy mailing
// through a real SMTP server (mail/testdata/smtpd.py, Debian's
// python3-aiosmtpd).

const recoverGlobal = `mail {
			from "Acme <noreply@acme.example>"
			smtp %[1]s {
				none
			}
		}
		regulation {
			user {
				max_retries 100
				free_retries 99
			}
			ip {
				max_retries 300
				free_retries 299
			}
		}
		chain {
			password {
				levels 1
			}
			password_reset {
				levels 1
			}
			magic_link {
				levels 1
				%[3]s
			}
		}
		client bc {
			first_party
			secret bc-secret
			redirect_uri http://bc.localhost/callback
			backchannel_logout_uri %[2]s/bc
		}`

// recoverSetup is an IdP whose chain offers password forgotten and a
// magic link beside the password, mailing through smtp; client bc has a
// back-channel logout endpoint (rc).
type recoverSetup struct {
	*idpSetup
	smtp *smtpd
	rc   *receiver
}

func newRecoverSetup(t *testing.T, magicLink string) *recoverSetup {
	s := &recoverSetup{idpSetup: &idpSetup{authPort: freePort(t), appPort: freePort(t)}, smtp: startSMTPD(t)}
	s.issuer = fmt.Sprintf("http://auth.localhost:%d", s.authPort)
	s.appHost = fmt.Sprintf("app.localhost:%d", s.appPort)
	s.redirect = "http://" + s.appHost + "/callback"
	s.rc = newReceiver(t, s.issuer)
	s.caddy = startCaddy(t, s.caddyfile(s.global(magicLink)))
	s.addUser(t, "alice", "correct horse battery")
	return s
}

// global is the setup's gatehouse settings, with magicLink's lines in
// the magic_link module.
func (s *recoverSetup) global(magicLink string) string {
	return fmt.Sprintf(recoverGlobal, s.smtp.addr, s.rc.srv.URL, magicLink)
}

// bcLogin signs alice in at client bc in b with her password and
// returns the ID token's sid.
func (s *recoverSetup) bcLogin(t *testing.T, b *browser) string {
	t.Helper()
	rp := s.client(t)
	conf := rp.conf
	conf.ClientID, conf.ClientSecret, conf.RedirectURL = "bc", "bc-secret", "http://bc.localhost/callback"
	v := oauth2.GenerateVerifier()
	app := s.appHost
	s.appHost = "bc.localhost"
	q := s.authorize(t, b, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v)), "alice", "correct horse battery")
	s.appHost = app
	tok, err := conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: "bc"}).Verify(rp.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		SID string `json:"sid"`
	}
	_ = idt.Claims(&c)
	return c.SID
}

// ask opens the sign-in page for client app in a new browser, follows
// the offer labelled offer and asks for a mail to login. It returns the
// answer and how long the asking took.
func (s *recoverSetup) ask(t *testing.T, offer, login string) (int, string, time.Duration) {
	t.Helper()
	b := newBrowser(t, s.appHost)
	resp, page := b.get(s.client(t).conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	m := regexp.MustCompile(`<a href="([^"]+)">` + regexp.QuoteMeta(offer) + `</a>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %q on the sign-in page:\n%s", offer, page)
	}
	next, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	resp, page = b.get(resp.Request.URL.ResolveReference(next).String())
	start := time.Now()
	resp, page = b.submitForm(resp.Request.URL.String(), page, url.Values{"login": {login}})
	return resp.StatusCode, page, time.Since(start)
}

var sealedRE = regexp.MustCompile(`(value="|attempt=)[A-Za-z0-9_-]{20,}`)

// Known and unknown addresses get the same page after the same time, and
// only known ones get mail.
func TestRecoverUnknownAddressesIndistinguishable(t *testing.T) {
	s := newRecoverSetup(t, "")
	var known, unknown []time.Duration
	var page0 string
	for i := range 8 {
		for _, who := range []string{"alice@example.com", fmt.Sprintf("nobody%d@example.com", i)} {
			st, page, took := s.ask(t, "Forgot password?", who)
			page = sealedRE.ReplaceAllString(page, "")
			if page0 == "" {
				page0 = page
			}
			if st != 200 || page != page0 || !strings.Contains(page, "Check your mail") {
				t.Fatalf("%s: %d\n%s\n--- first answer:\n%s", who, st, page, page0)
			}
			if who == "alice@example.com" {
				known = append(known, took)
			} else {
				unknown = append(unknown, took)
			}
		}
	}
	slices.Sort(known)
	slices.Sort(unknown)
	k, u := known[len(known)/2], unknown[len(unknown)/2]
	t.Logf("median answer: known %s, unknown %s (%v %v)", k, u, known, unknown)
	// Apart by no more than 30 ms or a fifth, whichever is more: a
	// loaded machine (CI, -race) stretches every answer.
	if u < 100*time.Millisecond || k < 100*time.Millisecond || (k-u).Abs() > max(30*time.Millisecond, k/5) {
		t.Fatalf("median answer: known %s, unknown %s", k, u)
	}
	s.smtp.nth(8)
	time.Sleep(500 * time.Millisecond)
	for _, m := range s.smtp.messages() {
		if m.to != "alice@example.com" || !strings.Contains(m.subject, "Set a new password") {
			t.Fatalf("mail to %s: %q", m.to, m.subject)
		}
	}
	if n := len(s.smtp.messages()); n != 8 {
		t.Fatalf("%d messages for 8 requests for alice", n)
	}
	if ev := findAudit(t, s.caddy, "password_reset", map[string]string{"reason": "requested: no account, nothing sent"}); len(ev) != 8 {
		t.Fatalf("%d audited requests for unknown addresses", len(ev))
	}
}

// Bad settings of both kinds are refused by `caddy adapt`, naming the
// module's line.
func TestRecoverSettingsAtAdapt(t *testing.T) {
	// The module block opens on line 8, the setting is on line 10: a
	// value checked against the whole settings is reported at the block.
	for _, c := range []struct {
		kind, line, want string
		at               int
	}{
		{"password_reset", "link_ttl 2h", "link_ttl 2h0m0s: a mailed link lives between 1m0s and 1h0m0s", 8},
		{"password_reset", "link_ttl soon", `setting link_ttl: "soon" is not a duration`, 10},
		{"magic_link", "other_browser sometimes", `other_browser is refuse or continue, not "sometimes"`, 8},
		{"magic_link", "code 123", `kind magic_link has no setting "code" (known: link_ttl, other_browser)`, 10},
		{"magic_link", "link_ttl 10s", "a mailed link lives between", 8},
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "Caddyfile")
		conf := "{\n\tgatehouse {\n\t\tissuer https://auth.example.com\n\t\tchain {\n\t\t\tpassword {\n\t\t\t\tlevels 1\n\t\t\t}\n\t\t\t" +
			c.kind + " {\n\t\t\t\tlevels 1\n\t\t\t\t" + c.line + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "adapt", "--config", file, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		raw, err := cmd.CombinedOutput()
		out := strings.ReplaceAll(string(raw), `\"`, `"`)
		if err == nil || !strings.Contains(out, c.want) || !strings.Contains(out, fmt.Sprintf("Caddyfile:%d\"", c.at)) {
			t.Errorf("%s %s: %v\n%s", c.kind, c.line, err, out)
		}
	}
}
