// Package benchkit is what the benchmark commands share: building and
// running a Caddy on loopback, free ports, a client that dials 127.0.0.1
// whatever the host name, and signing in through a login page.
package benchkit

import (
	"context"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/freeport"
)

// Cleanup, when set, runs before a benchkit failure ends the program, so
// that the servers a benchmark started do not outlive it.
var Cleanup = func() {}

// fatalf ends the program after Cleanup.
func fatalf(format string, args ...any) {
	Cleanup()
	log.Fatalf(format, args...)
}

// Build builds ./cmd/caddy into dir and returns the binary's path.
func Build(dir string) string {
	bin := filepath.Join(dir, "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput(); err != nil {
		fatalf("building caddy: %v\n%s", err, out)
	}
	return bin
}

// Caddy is a running Caddy process.
type Caddy struct {
	Cmd *exec.Cmd
	Dir string
}

// Start runs bin with caddyfile in dir (its HOME and data directory) and
// waits until adminURL answers.
func Start(bin, dir, caddyfile, adminURL string) *Caddy {
	os.MkdirAll(dir, 0o700)
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	logf, _ := os.Create(filepath.Join(dir, "caddy.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		fatalf("%v", err)
	}
	c := &Caddy{Cmd: cmd, Dir: dir}
	for range 600 {
		if resp, err := http.Get(adminURL); err == nil {
			resp.Body.Close()
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Stop()
	fatalf("caddy did not start; see %s", filepath.Join(dir, "caddy.log"))
	return nil
}

// Stop ends the process by its PID and waits for it.
func (c *Caddy) Stop() {
	if c == nil || c.Cmd.Process == nil {
		return
	}
	c.Cmd.Process.Signal(syscall.SIGTERM)
	c.Cmd.Wait()
}

// FreePort is a TCP port free on 127.0.0.1 now, never one it gave
// before in this process.
func FreePort() int {
	p, err := freeport.Port()
	if err != nil {
		fatalf("%v", err)
	}
	return p
}

// Loopback is a transport that dials 127.0.0.1 whatever the host name
// (*.localhost need no DNS).
func Loopback() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{MaxIdleConnsPerHost: 4, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}}
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// SignIn loads start with c (a navigation), fills the login page it
// lands on with user and password and posts it; it returns the answer to
// the posted form (after the redirects c follows).
func SignIn(c *http.Client, start, user, password string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodGet, start, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formAction.FindSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("no login form at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	action, err := url.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		return nil, err
	}
	form := url.Values{"username": {user}, "password": {password}}
	for _, h := range hiddenInput.FindAllSubmatch(page, -1) {
		form.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	resp, err = c.PostForm(resp.Request.URL.ResolveReference(action).String(), form)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// Profile fetches a CPU profile of the Caddy whose admin API is at
// adminURL, for most of d, into dir/name; with dir empty it does
// nothing. The channel closes when the profile is written.
func Profile(adminURL, dir, name string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if dir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		secs := max(1, int(d.Seconds())-1)
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", adminURL, secs))
		if err != nil {
			log.Printf("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			log.Printf("profile: %v", err)
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}()
	return done
}
