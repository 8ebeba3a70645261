package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// newChromium starts a headless Debian chromium with a fresh profile,
// resolving every *.localhost name to 127.0.0.1.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (run .ci/run, which installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("host-resolver-rules", "MAP *.localhost 127.0.0.1"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

func TestBrowserLogin(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	rp := s.client(t)
	ctx := newChromium(t)

	authURL := rp.conf.AuthCodeURL("browser-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("f-username"))); err != nil {
		t.Fatalf("opening the login page: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "sign-in.png")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")),
	)
	if err != nil {
		t.Fatalf("login in chromium: %v", err)
	}
	if !strings.Contains(title, "Sign in") {
		t.Errorf("login page title %q", title)
	}
	var loc, body string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(loc, s.redirect) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, s.redirect) || u.Query().Get("code") == "" ||
		u.Query().Get("state") != "browser-state" || u.Query().Get("iss") != s.issuer {
		t.Fatalf("browser ended at %q (%s), want the client's callback with code, state and iss", loc, body)
	}
	if !strings.Contains(body, "callback reached") {
		t.Fatalf("callback page body %q", body)
	}

	// Session Management: the OP iframe's script, in this browser with
	// its browser-state cookie, computes the session_state the client got.
	ss := u.Query().Get("session_state")
	_, salt, _ := strings.Cut(ss, ".")
	if err := chromedp.Do(ctx, chromedp.Navigate(s.issuer+"/check_session")); err != nil {
		t.Fatal(err)
	}
	origin := "http://" + s.appHost
	js := fmt.Sprintf(`gatehouseSessionState("app", %q, gatehouseBrowserState(), %q)`, origin, salt)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil || got != ss {
		t.Fatalf("iframe script computes %q (%v), the client got %q", got, err, ss)
	}
}

func TestBrowserGateRoundTrip(t *testing.T) {
	s := newGateSetup(t)
	ctx := newChromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.app+"/hello?from=browser"), chromedp.WaitVisible(chromedp.ID("f-username"))); err != nil {
		t.Fatalf("gate did not lead to the login page: %v", err)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")),
	)
	if err != nil {
		t.Fatal(err)
	}
	var loc, body string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(loc, s.app+"/hello") {
			break
		}
	}
	if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	if loc != s.app+"/hello?from=browser" || !strings.Contains(body, `"Remote-User":"alice"`) {
		t.Fatalf("ended at %q with %q", loc, body)
	}
}

func TestBrowserTOTPEnrolment(t *testing.T) {
	s := newChainSetup(t)
	ctx := newChromium(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(s.app+"/admin/"),
		chromedp.WaitVisible(chromedp.ID("f-username")),
		chromedp.SendKeys(chromedp.ID("f-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("f-password"), "correct horse battery"),
		chromedp.Submit(chromedp.ID("f-password")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
	)
	if err != nil {
		t.Fatalf("to the enrolment page: %v", err)
	}
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("totp-secret")))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "totp-enrolment.png")
	qrWidth, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("figure.qr img").naturalWidth`))
	if err != nil || qrWidth < 100 {
		t.Fatalf("QR image not rendered (natural width %v): %v", qrWidth, err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("f-code"), totpCode(t, strings.TrimSpace(secret), time.Now())),
		chromedp.Submit(chromedp.ID("f-code")),
	)
	if err != nil {
		t.Fatal(err)
	}
	var body string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err == nil && strings.Contains(body, "Remote-Acr") {
			break
		}
	}
	if !strings.Contains(body, `"Remote-Acr":"2"`) || !strings.Contains(body, `"_path":"/admin/"`) {
		t.Fatalf("after enrolment the browser shows %q", body)
	}
}
