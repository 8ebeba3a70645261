// Package e2e runs Gatehouse the way people do: a caddy binary built
// from ./cmd/caddy, started with a Caddyfile on loopback ports, and
// driven by real clients (x/oauth2, go-oidc, chromium).
package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/freeport"
	"github.com/gatehouse-idp/gatehouse/internal/logtest"
)

// caddyBin is the binary under test, built once by TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "../cmd/caddy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building caddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.Must(t)
}

// caddy is one running Caddy process.
type caddy struct {
	t       testing.TB
	dir     string // HOME and XDG dirs live here: the data dir is private
	config  string
	admin   string
	cmd     *exec.Cmd
	log     *logtest.Buffer // all output, across restarts
	waitErr chan error
}

// startCaddy writes caddyfile (with {admin} replaced by a free admin
// address) and runs caddy until the test ends.
func startCaddy(t testing.TB, caddyfile string) *caddy {
	t.Helper()
	c := &caddy{t: t, dir: t.TempDir()}
	c.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.config = filepath.Join(c.dir, "Caddyfile")
	c.writeConfig(caddyfile)
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *caddy) writeConfig(caddyfile string) {
	caddyfile = strings.ReplaceAll(caddyfile, "{admin}", c.admin)
	if err := os.WriteFile(c.config, []byte(caddyfile), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *caddy) env() []string {
	return append(os.Environ(),
		"HOME="+c.dir,
		"XDG_DATA_HOME="+filepath.Join(c.dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"),
	)
}

func (c *caddy) start() {
	c.t.Helper()
	if c.log == nil {
		c.log = &logtest.Buffer{}
	}
	c.cmd = exec.Command(caddyBin, "run", "--config", c.config, "--adapter", "caddyfile")
	c.cmd.Env = c.env()
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.waitErr = make(chan error, 1)
	go func() { c.waitErr <- c.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.waitErr:
			c.t.Fatalf("caddy exited: %v\n%s", err, c.log)
		default:
		}
		resp, err := http.Get("http://" + c.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("caddy did not start\n%s", c.log)
}

// stop ends the process by its PID and waits for it.
func (c *caddy) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.waitErr:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.waitErr
	}
	c.cmd = nil
	if c.t.Failed() {
		c.t.Logf("caddy log:\n%s", c.log)
	}
}

// cli runs `caddy gatehouse args...` against this Caddy's admin API.
func (c *caddy) cli(stdin string, args ...string) (string, error) {
	args = append([]string{"gatehouse"}, args...)
	args = append(args, "--address", c.admin)
	for try := 0; ; try++ {
		cmd := exec.Command(caddyBin, args...)
		cmd.Env = c.env()
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		// Right after a reload Caddy may swap its admin server and drop
		// a connection (EOF): the request was not served; try again.
		if err != nil && strings.Contains(string(out), "EOF") && try < 3 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return string(out), err
	}
}

// reload applies a new Caddyfile with `caddy reload`.
func (c *caddy) reload(caddyfile string) {
	c.t.Helper()
	c.writeConfig(caddyfile)
	cmd := exec.Command(caddyBin, "reload", "--config", c.config, "--adapter", "caddyfile", "--address", c.admin)
	cmd.Env = c.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// loopbackTransport sends every request to 127.0.0.1, whatever the
// host name (*.localhost names need no DNS this way).
func loopbackTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
	}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects to stopHost (the client's callback), so tests can read them.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB, stopHosts ...string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{
		Jar:       jar,
		Transport: loopbackTransport(),
		Timeout:   20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			for _, h := range stopHosts {
				if req.URL.Host == h {
					return http.ErrUseLastResponse
				}
			}
			if len(via) > 10 {
				return fmt.Errorf("too many redirects")
			}
			return nil
		},
	}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func (b *browser) postForm(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submitLogin fills the login form in page (served at pageURL) and posts it.
func (b *browser) submitLogin(pageURL, page, username, password string) (*http.Response, string) {
	b.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no login form in page:\n%s", page)
	}
	action, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		b.t.Fatal(err)
	}
	base, _ := url.Parse(pageURL)
	form := url.Values{"username": {username}, "password": {password}}
	for _, h := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	return b.postForm(base.ResolveReference(action).String(), form)
}

func base64URLDecode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// submitForm posts the form in page with fields set (hidden fields kept).
func (b *browser) submitForm(pageURL, page string, fields url.Values) (*http.Response, string) {
	b.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form in page:\n%s", page)
	}
	action, _ := url.Parse(html.UnescapeString(m[1]))
	base, _ := url.Parse(pageURL)
	form := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.postForm(base.ResolveReference(action).String(), form)
}

// cookie returns b's cookie named name for origin u; the test fails
// without one.
func (b *browser) cookie(u, name string) *http.Cookie {
	b.t.Helper()
	pu, _ := url.Parse(u)
	for _, c := range b.client.Jar.Cookies(pu) {
		if c.Name == name {
			return c
		}
	}
	b.t.Fatalf("no cookie %s for %s", name, u)
	return nil
}

// startIDP runs a Caddy whose only site is a development IdP at issuer;
// settings are the rest of its gatehouse block.
func startIDP(t testing.TB, issuer, settings string) *caddy {
	t.Helper()
	return startCaddy(t, fmt.Sprintf("{\n\tadmin {admin}\n\tdefault_bind 127.0.0.1\n\tgatehouse {\n\t\tissuer %[1]s\n\t\tdev\n%[2]s\t}\n}\n%[1]s {\n\tgatehouse_idp\n}\n", issuer, settings))
}
