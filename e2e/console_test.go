package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The admin console in chromium, as an admin does their main tasks: on
// by default at <issuer>/admin for the group admins at level 2 (the
// admin enrols TOTP on the way in). Every action leaves an admin_action
// line naming the admin; a non-admin gets 403; a form without its CSRF
// token does nothing. With GATEHOUSE_SCREENSHOTS naming a folder, the
// main pages are saved there as PNGs.
func TestConsoleBrowser(t *testing.T) {
	s := newChainSetup(t) // alice (staff), password then TOTP at level 2
	if out, err := s.caddy.cli("sturdy lantern 42\n", "user", "add", "root", "--group", "admins", "--password-stdin"); err != nil {
		t.Fatalf("user add root: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "bans", "add", "--ip", "203.0.113.9", "--for", "2h"); err != nil {
		t.Fatalf("bans add: %v\n%s", err, out)
	}

	// Alice, signed in at level 2 with TOTP, is no admin.
	alice := newBrowser(t)
	if _, _, echo := s.visit(t, alice, s.app+"/", nil); echo == nil {
		t.Fatal("alice's sign-in failed")
	}
	resp, page := alice.get(s.app + "/admin/")
	alice.submitForm(resp.Request.URL.String(), page, url.Values{"code": {totpCode(t, totpSecretRE.FindStringSubmatch(page)[1], time.Now())}})
	resp, page = alice.get(s.issuer + "/admin/users")
	if resp.StatusCode != 403 || !strings.Contains(page, "Not an administrator") {
		t.Fatalf("alice at the console: %d\n%s", resp.StatusCode, page)
	}

	ctx := newChromium(t)
	ctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	shot := func(name string) { t.Helper(); screenshot(t, ctx, name) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// notice waits for the page's note after an action and returns it.
	notice := func(want string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			got, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"), chromedp.AtLeast(0)))
			if strings.Contains(got, want) {
				return
			}
		}
		t.Fatalf("page does not say %q:\n%s", want, got)
	}
	button := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

	// Sign in, then the step-up: the admin enrols TOTP.
	do("sign in", chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(s.issuer+"/admin"),
		chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.SendKeys(chromedp.ID("f-username"), "root"),
		chromedp.SendKeys(chromedp.ID("f-password"), "sturdy lantern 42"),
		chromedp.Submit(chromedp.ID("f-password")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")))
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("totp-secret")))
	if err != nil {
		t.Fatal(err)
	}
	do("TOTP", chromedp.SendKeys(chromedp.ID("f-code"), totpCode(t, strings.TrimSpace(secret), time.Now())),
		chromedp.Submit(chromedp.ID("f-code")),
		chromedp.WaitVisible(chromedp.ID("q")))

	// Users: create carol, disable her.
	do("create user", chromedp.SendKeys(chromedp.ID("new-username"), "carol"),
		chromedp.SendKeys(chromedp.ID("new-password"), "quiet meadow 77"),
		chromedp.SendKeys(chromedp.ID("new-name"), "Carol Example"),
		chromedp.SendKeys(chromedp.ID("new-email"), "carol@example.com"),
		chromedp.SendKeys(chromedp.ID("new-groups"), "staff"),
		button(`button[value="create"]`))
	notice("User carol created.")
	shot("console-users.png")
	do("open carol", chromedp.Navigate(s.issuer+"/admin/user?name=carol"), button(`button[value="disable"]`))
	notice("User carol disabled.")
	shot("console-user.png")

	// Reset alice's TOTP through the totp module's admin action.
	do("reset alice's TOTP", chromedp.Navigate(s.issuer+"/admin/user?name=alice"),
		button(`form:has(input[name="module_action"][value="reset"]) button`))
	notice("TOTP of alice removed")

	// End alice's session.
	do("sessions", chromedp.Navigate(s.issuer+"/admin/sessions"), chromedp.WaitVisible(chromedp.CSS(`button[value="end"]`)))
	shot("console-sessions.png")
	do("end alice's session", button(`button[value="end"]`))
	notice("Session ended.")
	if resp, page := alice.get(s.issuer + "/account"); resp.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("alice still signed in after her session was ended: %d", resp.StatusCode)
	}

	// Lift the ban.
	do("bans", chromedp.Navigate(s.issuer+"/admin/bans"), chromedp.WaitVisible(chromedp.CSS(`button[value="lift"]`)))
	shot("console-bans.png")
	do("lift", button(`button[value="lift"]`))
	notice("Ban of ip:203.0.113.9 lifted.")

	// Create a client (its secret shown once), then delete it.
	do("create client", chromedp.Navigate(s.issuer+"/admin/clients"),
		chromedp.SendKeys(chromedp.ID("client_id"), "wiki"),
		chromedp.SendKeys(chromedp.ID("client-name"), "Team Wiki"),
		chromedp.SendKeys(chromedp.ID("redirect_uris"), "https://wiki.example/callback"),
		button(`button[value="create"]`),
		chromedp.WaitVisible(chromedp.ID("secret")))
	clientSecret, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("secret")))
	if err != nil || len(clientSecret) < 20 {
		t.Fatalf("client secret %q: %v", clientSecret, err)
	}
	shot("console-clients.png")
	do("clients again", chromedp.Navigate(s.issuer+"/admin/clients"), chromedp.WaitVisible(chromedp.ID("client_id")))
	if body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"))); strings.Contains(body, clientSecret) {
		t.Fatal("the client secret is shown again")
	}
	do("delete client", button(`form:has(input[name="client_id"][value="wiki"]) button[value="delete"]`))
	notice("Client wiki deleted.")

	// Rotate the signing keys; the same form without its CSRF token does
	// nothing.
	do("rotate", chromedp.Navigate(s.issuer+"/admin/keys"), button(`button[value="rotate"]`))
	notice("A new signing key is active")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { document.querySelector('input[name="csrf"]').remove(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	do("rotate without csrf", button(`button[value="rotate"]`))
	notice("This form has expired")

	// The audit trail: the admin's own actions.
	do("audit", chromedp.Navigate(s.issuer+"/admin/audit"), chromedp.WaitVisible(chromedp.ID("event")))
	shot("console-audit.png")
	do("audit search",
		chromedp.SendKeys(chromedp.ID("event"), "admin_action"),
		chromedp.SendKeys(chromedp.ID("a-user"), "root"),
		chromedp.Submit(chromedp.ID("a-user")))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "event=admin_action") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the audit search did not load")
		}
	}
	notice("on user:carol console create user")
	if body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("tbody"))); strings.Contains(body, "login_succeeded") {
		t.Fatal("the search by event shows other events")
	}

	// Every action is an admin_action line naming the admin.
	for _, want := range []map[string]string{
		{"target": "user:carol", "reason": "console create user"},
		{"target": "user:carol", "reason": "console disable user"},
		{"target": "user:alice", "reason": "console module totp reset user"},
		{"target": "ip:203.0.113.9", "reason": "console lift ban"},
		{"target": "client:wiki", "reason": "console create client"},
		{"target": "client:wiki", "reason": "console delete client"},
		{"target": "signing-keys", "reason": "console rotate keys"},
		{"target": "console", "reason": "POST /admin/keys (refused: no valid CSRF token)"},
	} {
		want["admin"] = "root"
		if n := len(findAudit(t, s.caddy, "admin_action", want)); n != 1 {
			t.Errorf("%d admin_action lines with %v, want 1", n, want)
		}
	}
	ended := 0
	for _, l := range findAudit(t, s.caddy, "admin_action", map[string]string{"admin": "root", "reason": "console end session"}) {
		if strings.HasPrefix(l["target"].(string), "session:") {
			ended++
		}
	}
	if ended != 1 {
		t.Errorf("%d admin_action lines for the ended session", ended)
	}
	if n := len(findAudit(t, s.caddy, "admin_action", map[string]string{"admin": "alice", "target": "console"})); n != 1 {
		t.Errorf("%d lines for alice's refused visit", n)
	}
}

// The console is on by default (signed-out visitors are sent to sign
// in) and gone with admin_console off.
func TestConsoleOnByDefaultAndOff(t *testing.T) {
	for _, tc := range []struct {
		global string
		want   int
	}{{"", 200}, {"admin_console off", 404}} {
		s := newIDP(t, tc.global)
		resp, page := newBrowser(t).get(s.issuer + "/admin/users")
		if resp.StatusCode != tc.want || tc.want == 200 && !strings.Contains(page, `name="password"`) {
			t.Errorf("%q: /admin/users answers %d at %s", tc.global, resp.StatusCode, resp.Request.URL)
		}
		s.caddy.stop()
	}
}
