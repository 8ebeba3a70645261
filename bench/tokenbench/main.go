// Command tokenbench measures the token endpoint: refresh-grant and
// client_credentials throughput and latency, on the embedded store and
// on Redis. For each store it starts one Caddy (built from ./cmd/caddy)
// on loopback, signs -workers people in to get one refresh token each,
// then for -duration per measurement keeps -workers requests in flight:
//
//   - baseline: GET of the discovery document (no store, no signing) —
//     what any request through this Caddy costs on this machine;
//   - refresh_token grants, each rotating the token and signing an ID
//     token (RS256), as a relying party keeping a session alive does;
//   - client_credentials grants, as a service calling an API does.
//
// It prints requests per second, per CPU, p50 and p99, the ratio of each
// to the baseline measured in the same run, and the ratio per CPU to
// Keycloak's published 120 refresh grants per second per vCPU. The load
// generator shares the CPUs, so the per-CPU figures are conservative.
// Everything binds to 127.0.0.1 and stops by itself; Redis is a
// redis-server started here on a free port.
//
// With -alg ES256 the ID tokens are signed with ECDSA P-256 (about 30
// times cheaper to sign than RS256's RSA-2048, which bounds the refresh
// rate with RS256); -profile DIR writes Caddy's CPU profile of each
// refresh run there.
//
//	go run ./bench/tokenbench [-duration 5s] [-workers 16] [-stores embedded,redis] [-alg RS256|ES256] [-profile DIR]
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
		signing_alg %[4]s
		%[3]s
		client bench {
			first_party
			secret bench-client-secret-0123456789
			redirect_uri http://rp.localhost/callback
		}
		client svc {
			secret svc-client-secret-0123456789
			grant_types client_credentials
			scopes bench:read
		}
	}
}

http://auth.localhost:%[2]d {
	gatehouse_idp
}
`

const password = "tulip-orbit-canoe-gravel"

// verifier and its S256 challenge (RFC 7636).
var verifier = strings.Repeat("v", 43)

var challenge = func() string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}()

// profileDir, when set, receives CPU profiles of the refresh runs.
var profileDir string

// keycloakPerCPU is Keycloak's published refresh-grant figure
// (refresh_token grants per second per vCPU, Keycloak 26 sizing guide).
const keycloakPerCPU = 120.0

type result struct {
	name     string
	ok, bad  int64
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func main() {
	duration := flag.Duration("duration", 5*time.Second, "length of each measurement")
	workers := flag.Int("workers", 16, "requests in flight")
	stores := flag.String("stores", "embedded,redis", "stores to measure (embedded, redis)")
	alg := flag.String("alg", "RS256", "ID token signing algorithm (RS256, ES256)")
	flag.StringVar(&profileDir, "profile", "", "write Caddy's CPU profile of each refresh measurement to this directory")
	flag.Parse()
	dir, err := os.MkdirTemp("", "tokenbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := benchkit.Build(dir)
	cpus := runtime.NumCPU()
	fmt.Printf("token endpoint, %d requests in flight, %v each, ID tokens %s, %d CPUs shared by Caddy and the load generator:\n", *workers, *duration, *alg, cpus)
	failed := false
	for _, st := range strings.Split(*stores, ",") {
		results := measure(bin, filepath.Join(dir, st), st, *alg, *workers, *duration)
		base := results[0]
		for _, r := range results {
			fmt.Printf("  %-9s %-19s %8.0f req/s  %7.0f /CPU  p50 %-8v p99 %-8v ratio to baseline %.3f",
				st, r.name, r.rate(), r.rate()/float64(cpus), r.p50, r.p99, r.rate()/base.rate())
			if r.name != "baseline" {
				fmt.Printf("  x Keycloak/vCPU %.1f", r.rate()/float64(cpus)/keycloakPerCPU)
			}
			if r.bad > 0 {
				fmt.Printf("  (%d failed)", r.bad)
				failed = true
			}
			fmt.Println()
		}
	}
	if failed {
		os.Exit(1)
	}
}

// measure runs the three measurements against a Caddy on store st.
func measure(bin, dir, st, alg string, workers int, d time.Duration) []result {
	storeConf := "store embedded " + filepath.Join(dir, "gatehouse.db")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	if st == "redis" {
		port := benchkit.FreePort()
		stop := startRedis(dir, port)
		defer stop()
		storeConf = fmt.Sprintf("store redis redis://127.0.0.1:%d", port)
	}
	admin, idp := benchkit.FreePort(), benchkit.FreePort()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
	c := benchkit.Start(bin, dir, fmt.Sprintf(caddyfile, admin, idp, storeConf, alg), adminURL+"/config/")
	defer c.Stop()
	issuer := fmt.Sprintf("http://auth.localhost:%d", idp)
	refresh := signIn(adminURL, issuer, workers)

	client := &http.Client{Transport: benchkit.Loopback(), Timeout: 30 * time.Second}
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
	post := func(form url.Values, id, secret string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		return client.Do(req)
	}
	baseline := run("baseline", workers, d, func(int) bool {
		resp, err := client.Get(issuer + "/.well-known/openid-configuration")
		return drain(resp, err) == http.StatusOK
	})
	var mu sync.Mutex
	profiled := benchkit.Profile(adminURL, profileDir, st+"-refresh.pprof", d)
	refreshes := run("refresh_token", workers, d, func(w int) bool {
		mu.Lock()
		rt := refresh[w]
		mu.Unlock()
		resp, err := post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "bench", "bench-client-secret-0123456789")
		if err != nil {
			return false
		}
		var tok struct {
			RefreshToken string `json:"refresh_token"`
			IDToken      string `json:"id_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tok)
		drain(resp, nil)
		if err != nil || resp.StatusCode != http.StatusOK || tok.RefreshToken == "" || tok.IDToken == "" {
			return false
		}
		mu.Lock()
		refresh[w] = tok.RefreshToken
		mu.Unlock()
		return true
	})
	<-profiled
	cc := run("client_credentials", workers, d, func(int) bool {
		resp, err := post(url.Values{"grant_type": {"client_credentials"}, "scope": {"bench:read"}}, "svc", "svc-client-secret-0123456789")
		return drain(resp, err) == http.StatusOK
	})
	return []result{baseline, refreshes, cc}
}

// run keeps workers calls of do in flight for d.
func run(name string, workers int, d time.Duration, do func(worker int) bool) result {
	var ok, bad atomic.Int64
	lat := make([][]time.Duration, workers)
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				t0 := time.Now()
				if do(w) {
					ok.Add(1)
					lat[w] = append(lat[w], time.Since(t0))
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r := result{name: name, ok: ok.Load(), bad: bad.Load(), elapsed: time.Since(start)}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		r.p50 = all[len(all)/2].Round(10 * time.Microsecond)
		r.p99 = all[min(len(all)-1, len(all)*99/100)].Round(10 * time.Microsecond)
	}
	return r
}

func drain(resp *http.Response, err error) int {
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// signIn adds n users, signs each in through the login page, redeems
// the code and returns the refresh tokens.
func signIn(adminURL, issuer string, n int) []string {
	var out []string
	for i := range n {
		name := fmt.Sprintf("user%03d", i)
		body := fmt.Sprintf(`{"username":%q,"password":%q}`, name, password)
		resp, err := http.Post(adminURL+"/gatehouse/users", "application/json", strings.NewReader(body))
		if drain(resp, err) != http.StatusCreated {
			log.Fatalf("adding %s: %v", name, err)
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: benchkit.Loopback(), Timeout: 30 * time.Second,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Host == "rp.localhost" {
					return http.ErrUseLastResponse
				}
				return nil
			}}
		q := url.Values{"client_id": {"bench"}, "response_type": {"code"}, "scope": {"openid profile"}, "redirect_uri": {"http://rp.localhost/callback"},
			"state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		resp, err = benchkit.SignIn(c, issuer+"/authorize?"+q.Encode(), name, password)
		if err != nil || resp.StatusCode != http.StatusFound {
			log.Fatalf("signing %s in: %v %v", name, err, resp)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {"http://rp.localhost/callback"}, "code_verifier": {verifier}}
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("bench", "bench-client-secret-0123456789")
		resp, err = c.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if tok.RefreshToken == "" {
			log.Fatalf("no refresh token for %s (%d)", name, resp.StatusCode)
		}
		out = append(out, tok.RefreshToken)
	}
	return out
}

// startRedis runs redis-server on 127.0.0.1:port without persistence.
func startRedis(dir string, port int) func() {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		log.Fatal("redis-server is not installed (apt-get install redis-server, or -stores embedded)")
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	log.Fatal("redis-server did not start")
	return nil
}
