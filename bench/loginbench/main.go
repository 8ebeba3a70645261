// Command loginbench measures what concurrent password logins cost: it
// starts one Caddy (built from ./cmd/caddy) on loopback with Gatehouse
// and -users accounts, then runs -concurrent full logins at once (the
// authorization request, the login page, the posted password) for
// -rounds rounds, and prints the Caddy process's resident memory before
// and at its peak (VmHWM from /proc), the logins per second, their
// p50/p99 latency and how many were turned away as busy (503, Retry-After)
// instead of queued without bound. It runs twice in the same run: with
// the default bound on concurrent password checks, and with the bound
// lifted (the baseline), and prints the ratio. Everything binds to
// 127.0.0.1 and stops by itself.
//
//	go run ./bench/loginbench [-concurrent 50] [-rounds 3]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const caddyfile = `{
	admin 127.0.0.1:%[1]d
	default_bind 127.0.0.1
	log {
		level ERROR
	}
	gatehouse {
		issuer http://auth.localhost:%[2]d
		dev
		client bench {
			secret bench-client-secret-0123456789
			redirect_uri http://rp.localhost/callback
		}
		regulation {
			ip {
				max_retries 100000
				free_retries 99999
			}
		}
		%[3]s
	}
}

http://auth.localhost:%[2]d {
	gatehouse_idp
}
`

const password = "tulip-orbit-canoe-gravel"

type result struct {
	ok, busy, failed int
	elapsed          time.Duration
	p50, p99         time.Duration
	rssBefore, peak  int // kB
}

func main() {
	concurrent := flag.Int("concurrent", 50, "logins at once")
	rounds := flag.Int("rounds", 3, "rounds of concurrent logins")
	users := flag.Int("users", 50, "accounts to spread the logins over")
	flag.Parse()
	dir, err := os.MkdirTemp("", "loginbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "caddy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput(); err != nil {
		log.Fatalf("building caddy: %v\n%s", err, out)
	}
	fmt.Printf("%d rounds of %d concurrent password logins (%d accounts, argon2id m=19MiB t=2), one Caddy each:\n", *rounds, *concurrent, *users)
	bounded := run(bin, filepath.Join(dir, "bounded"), "", *concurrent, *rounds, *users)
	report("bounded (default: 2 checks per CPU)", bounded)
	free := run(bin, filepath.Join(dir, "unbounded"), "password_hashing {\n\t\t\tconcurrency 10000\n\t\t}", *concurrent, *rounds, *users)
	report("unbounded (baseline)", free)
	fmt.Printf("peak memory bounded/unbounded: %.2f (target: peak < 400 MB)\n", float64(bounded.peak)/float64(free.peak))
	if bounded.failed+free.failed > 0 {
		os.Exit(1)
	}
}

func report(name string, r result) {
	fmt.Printf("%-38s signed in %d, busy (503) %d, failed %d in %v: %.1f logins/s, p50 %v, p99 %v; RSS %d MB before, peak %d MB\n",
		name, r.ok, r.busy, r.failed, r.elapsed.Round(time.Millisecond), float64(r.ok)/r.elapsed.Seconds(), r.p50, r.p99,
		r.rssBefore/1024, r.peak/1024)
}

// run starts a Caddy with the extra gatehouse settings, adds the users
// and runs the logins.
func run(bin, dir, extra string, concurrent, rounds, users int) result {
	os.MkdirAll(dir, 0o700)
	admin, idp := freePort(), freePort()
	cfg := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfg, []byte(fmt.Sprintf(caddyfile, admin, idp, extra)), 0o600)
	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	logf, _ := os.Create(filepath.Join(dir, "caddy.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
	waitUp(adminURL + "/config/")
	for i := range users {
		body, _ := json.Marshal(map[string]string{"username": fmt.Sprintf("user%03d", i), "password": password})
		resp, err := http.Post(adminURL+"/gatehouse/users", "application/json", bytes.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusCreated {
			log.Fatalf("adding user %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	issuer := fmt.Sprintf("http://auth.localhost:%d", idp)
	var res result
	res.rssBefore, _ = procStatus(cmd.Process.Pid, "VmRSS:")
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	for r := range rounds {
		var wg sync.WaitGroup
		for i := range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				status, err := login(issuer, fmt.Sprintf("user%03d", (r*concurrent+i)%users))
				d := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && status == http.StatusFound:
					res.ok++
					lat = append(lat, d)
				case status == http.StatusServiceUnavailable:
					res.busy++
				default:
					res.failed++
					if res.failed < 4 {
						log.Printf("login: %d %v", status, err)
					}
				}
			}()
		}
		wg.Wait()
	}
	res.elapsed = time.Since(start)
	res.peak, _ = procStatus(cmd.Process.Pid, "VmHWM:")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))].Round(time.Millisecond)
	}
	res.p50, res.p99 = pct(0.5), pct(0.99)
	return res
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// login runs one authorization with a fresh browser and returns the
// status of the answer to the posted password (302 to the client: in).
func login(issuer, user string) (int, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: loopback(), Timeout: 60 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "rp.localhost" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	q := url.Values{"client_id": {"bench"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"http://rp.localhost/callback"},
		"state": {"s"}, "code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}
	resp, err := c.Get(issuer + "/authorize?" + q.Encode())
	if err != nil {
		return 0, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formAction.FindSubmatch(page)
	if m == nil {
		return resp.StatusCode, fmt.Errorf("no login form")
	}
	action, _ := url.Parse(html.UnescapeString(string(m[1])))
	form := url.Values{"username": {user}, "password": {password}}
	for _, h := range hiddenInput.FindAllSubmatch(page, -1) {
		form.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	resp, err = c.PostForm(resp.Request.URL.ResolveReference(action).String(), form)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// procStatus reads a "Key:  N kB" line of /proc/<pid>/status, in kB.
func procStatus(pid int, key string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			return strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	return 0, fmt.Errorf("no %s", key)
}

func loopback() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{MaxIdleConnsPerHost: 4, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUp(u string) {
	for range 600 {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatal("caddy did not start")
}
