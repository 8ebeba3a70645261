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
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/bench/internal/benchkit"
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
	bin := benchkit.Build(dir)
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
	admin, idp := benchkit.FreePort(), benchkit.FreePort()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
	c := benchkit.Start(bin, dir, fmt.Sprintf(caddyfile, admin, idp, extra), adminURL+"/config/")
	defer c.Stop()
	cmd := c.Cmd
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

// login runs one authorization with a fresh browser and returns the
// status of the answer to the posted password (302 to the client: in).
func login(issuer, user string) (int, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: benchkit.Loopback(), Timeout: 60 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "rp.localhost" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	q := url.Values{"client_id": {"bench"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {"http://rp.localhost/callback"},
		"state": {"s"}, "code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}
	resp, err := benchkit.SignIn(c, issuer+"/authorize?"+q.Encode(), user, password)
	if err != nil {
		return 0, err
	}
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
