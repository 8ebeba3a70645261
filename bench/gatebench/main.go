// Command gatebench measures what gatehouse_gate costs in front of an
// upstream: it starts one Caddy (built from ./cmd/caddy) on loopback with
// an upstream, a plain reverse_proxy site and the same site behind
// gatehouse_gate, signs in once, then runs wrk against plain and gated
// in alternation and prints requests/s, p50/p99 latency and the ratio
// gated/plain. Everything binds to 127.0.0.1 and stops by itself.
//
//	go run ./bench/gatebench [-rounds 3] [-duration 10s] [-connections 32]
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
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
		demo_user bench bench-password-for-gatebench
	}
}

http://auth.localhost:%[2]d {
	gatehouse_idp
}

http://:%[3]d {
	respond "hello from the upstream" 200
}

http://plain.localhost:%[4]d {
	reverse_proxy 127.0.0.1:%[3]d
}

http://gated.localhost:%[5]d {
	gatehouse_gate
	reverse_proxy 127.0.0.1:%[3]d
}
`

func main() {
	rounds := flag.Int("rounds", 3, "alternating rounds per target")
	duration := flag.Duration("duration", 10*time.Second, "wrk duration per run")
	conns := flag.Int("connections", 32, "wrk connections")
	profileDir := flag.String("profile", "", "write Caddy's CPU profile of the first gated round to this directory")
	flag.Parse()
	if _, err := exec.LookPath("wrk"); err != nil {
		log.Fatal("wrk is not installed (apt-get install wrk)")
	}
	dir, err := os.MkdirTemp("", "gatebench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := benchkit.Build(dir)
	ports := make([]int, 5)
	for i := range ports {
		ports[i] = benchkit.FreePort()
	}
	c := benchkit.Start(bin, dir, fmt.Sprintf(caddyfile, ports[0], ports[1], ports[2], ports[3], ports[4]),
		fmt.Sprintf("http://127.0.0.1:%d/config/", ports[0]))
	stopCaddy = c.Stop
	defer stopCaddy()
	plain := fmt.Sprintf("http://127.0.0.1:%d/", ports[3])
	gated := fmt.Sprintf("http://127.0.0.1:%d/", ports[4])
	cookie, err := login(fmt.Sprintf("http://gated.localhost:%d/", ports[4]))
	if err != nil {
		fatal("signing in: %v", err)
	}
	targets := []struct {
		name, url, host string
		hdr             []string
	}{
		// The same Cookie header on both: browsers send it either way.
		{"plain reverse_proxy", plain, fmt.Sprintf("plain.localhost:%d", ports[3]), []string{"Cookie: " + cookie}},
		{"gatehouse_gate + reverse_proxy", gated, fmt.Sprintf("gated.localhost:%d", ports[4]), []string{"Cookie: " + cookie}},
	}
	// Check the gated target really passes with the cookie (200 from the
	// upstream), so the benchmark cannot measure redirects.
	for _, tg := range targets {
		req, _ := http.NewRequest(http.MethodGet, tg.url, nil)
		req.Host = tg.host
		for _, h := range tg.hdr {
			k, v, _ := strings.Cut(h, ": ")
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fatal("%v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from the upstream") {
			fatal("%s answers %d %q, not the upstream", tg.name, resp.StatusCode, body)
		}
	}
	fmt.Printf("gatebench: %d rounds x %v per target, %d connections, 2 wrk threads, loopback\n", *rounds, *duration, *conns)
	res := make([][]result, len(targets))
	run(targets[0].url, targets[0].host, targets[0].hdr, 3*time.Second, *conns) // warm up
	run(targets[1].url, targets[1].host, targets[1].hdr, 3*time.Second, *conns)
	for r := 0; r < *rounds; r++ {
		for i, tg := range targets {
			var profiled <-chan struct{}
			if r == 0 {
				profiled = benchkit.Profile(fmt.Sprintf("http://127.0.0.1:%d", ports[0]), *profileDir, fmt.Sprintf("target%d.pprof", i), *duration)
			}
			x := run(tg.url, tg.host, tg.hdr, *duration, *conns)
			if profiled != nil {
				<-profiled
			}
			res[i] = append(res[i], x)
			fmt.Printf("  round %d %-32s %9.0f req/s  p50 %-8v p99 %v\n", r+1, tg.name, x.rps, x.p50, x.p99)
		}
	}
	// Load on a 2-core machine drifts between rounds; each round's
	// gate/plain pair ran back to back, so the median of the per-round
	// ratios is the steadiest figure. The ratio of the means is shown too.
	var ratios []float64
	var sumP, sumG float64
	for i := range res[0] {
		ratios = append(ratios, res[1][i].rps/res[0][i].rps)
		sumP += res[0][i].rps
		sumG += res[1][i].rps
	}
	sort.Float64s(ratios)
	med := func(rs []result) result {
		rs = append([]result(nil), rs...)
		sort.Slice(rs, func(a, b int) bool { return rs[a].rps < rs[b].rps })
		return rs[len(rs)/2]
	}
	p, g := med(res[0]), med(res[1])
	fmt.Printf("median plain reverse_proxy:            %9.0f req/s  p50 %v  p99 %v\n", p.rps, p.p50, p.p99)
	fmt.Printf("median gatehouse_gate + reverse_proxy: %9.0f req/s  p50 %v  p99 %v\n", g.rps, g.p50, g.p99)
	fmt.Printf("ratio of means gate/plain: %.2f\n", sumG/sumP)
	fmt.Printf("ratio gate/plain (median of per-round ratios): %.2f (target >= 0.90)\n", ratios[len(ratios)/2])
}

// stopCaddy stops the Caddy this run started; fatal calls it first, so
// no failure leaves a server behind.
var stopCaddy = func() {}

func fatal(format string, args ...any) {
	stopCaddy()
	log.Fatalf(format, args...)
}

type result struct {
	rps      float64
	p50, p99 time.Duration
}

var (
	rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pRE   = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	nonOK = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func run(u, host string, hdr []string, d time.Duration, conns int) result {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency", "-H", "Host: " + host}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	out, err := exec.Command("wrk", append(args, u)...).CombinedOutput()
	if err != nil {
		fatal("wrk: %v\n%s", err, out)
	}
	if m := nonOK.FindSubmatch(out); m != nil {
		fatal("wrk saw %s error responses against %s", m[1], host)
	}
	var r result
	if m := rpsRE.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	for _, m := range pRE.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		dur := time.Duration(v * float64(unit)).Round(time.Microsecond)
		if string(m[1]) == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	return r
}

// login signs in as the demo user through the gate and returns the
// gate's cookie ("name=value").
func login(start string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: benchkit.Loopback()}
	resp, err := benchkit.SignIn(c, start, "bench", "bench-password-for-gatebench")
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(start)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "gatehouse-gate" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("no gate cookie after login (ended at %s, %d)", resp.Request.URL, resp.StatusCode)
}
