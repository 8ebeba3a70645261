package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/bench/internal/benchkit"
)

// target is one site wrk loads.
type target struct {
	name, url, host, cookies string
	// base names the target this one is compared with ("" for none),
	// and also another one.
	base, also string
}

func numCPU() int { return runtime.NumCPU() }

// measureStore runs every target on a Caddy using store st and returns
// the summary lines.
func measureStore(bin, dir, st string, o options) []string {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fatal("%v", err)
	}
	ports := map[string]int{}
	for _, p := range []string{"admin", "idp", "up", "noop", "plain", "gated", "fanoop", "fa", "fagate"} {
		ports[p] = benchkit.FreePort()
	}
	storeLine := ""
	var redis *benchkit.Redis
	if st == "redis" {
		redis = benchkit.StartRedis(dir)
		stop = redis.Stop
		storeLine = "store redis redis://" + redis.Addr + "/0"
	} else if st != "embedded" {
		fatal("unknown store %q", st)
	}
	var up *upstream
	upstreamSite := ""
	if o.upstream == "nginx" {
		up = startNginx(dir, ports["up"])
		stop = func() { redis.Stop(); up.stop() }
	} else {
		upstreamSite = "http://:{up} {\n\trespond \"hello from the upstream\" 200\n}\n"
	}
	cf := strings.ReplaceAll(strings.ReplaceAll(caddyfile, "{store}", storeLine), "{upstream}", upstreamSite)
	for name, p := range ports {
		cf = strings.ReplaceAll(cf, "{"+name+"}", strconv.Itoa(p))
	}
	admin := fmt.Sprintf("http://127.0.0.1:%d", ports["admin"])
	c := benchkit.Start(bin, dir, cf, admin+"/config/")
	stop = func() { c.Stop(); redis.Stop(); up.stop() }
	defer stop()

	at := func(name string) string {
		if name == "idp" {
			return fmt.Sprintf("auth.localhost:%d", ports[name])
		}
		return fmt.Sprintf("%s.localhost:%d", name, ports[name])
	}
	start := time.Now()
	sso := signIn("http://"+at("gated")+"/", "http://"+at("idp")+"/")
	gatedCookies := filepath.Join(dir, "gated-cookies.txt")
	faCookies := filepath.Join(dir, "fa-cookies.txt")
	writeCookies(gatedCookies, makeSessions(sso, "http://"+at("gated")+"/", o.sessions))
	writeCookies(faCookies, makeSessions(sso, "http://"+at("fa")+"/", o.sessions))
	fmt.Printf("\n[%s store] %d gate sessions on each of 2 sites made in %v\n", st, o.sessions, time.Since(start).Round(time.Second))

	url := func(name, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", ports[name], path) }
	targets := []target{
		{name: "plain reverse_proxy", url: url("plain", "/"), host: at("plain"), cookies: gatedCookies},
		{name: "plain + the 5 headers (header_up)", url: url("plain", "/headers"), host: at("plain"), cookies: gatedCookies, base: "plain reverse_proxy"},
		{name: "gate (cache)", url: url("gated", "/"), host: at("gated"), cookies: gatedCookies, base: "plain reverse_proxy", also: "plain + the 5 headers (header_up)"},
		{name: "gate, identity headers off", url: url("gated", "/noheaders"), host: at("gated"), cookies: gatedCookies, base: "plain reverse_proxy"},
		{name: "gate (store every request)", url: url("gated", "/store/x"), host: at("gated"), cookies: gatedCookies, base: "plain reverse_proxy"},
	}
	if st == "embedded" {
		targets = append(targets,
			target{name: "forward_auth to a no-op 200", url: url("fanoop", "/"), host: at("fanoop"), cookies: faCookies, base: "plain reverse_proxy"},
			target{name: "forward_auth to gatehouse verify", url: url("fa", "/"), host: at("fa"), cookies: faCookies, base: "forward_auth to a no-op 200"})
	}
	for _, tg := range targets {
		check(tg)
	}
	pids := []int{c.Cmd.Process.Pid}
	if redis != nil {
		pids = append(pids, redis.Cmd.Process.Pid)
	}
	lua := writeLua(dir)
	res := map[string][]result{}
	for r := range o.rounds {
		for i, tg := range targets {
			// Every run comes right after a short one of its own: the
			// gate's cache then holds every session (warm; the worst
			// case, cold, is the store-every-request target).
			runWrk(tg, lua, o.headers, 2*time.Second, o.conns, pids)
			var profiled <-chan struct{}
			if r == 0 {
				profiled = benchkit.Profile(admin, o.profileDir, fmt.Sprintf("%s-target%d.pprof", st, i), o.duration)
			}
			x := runWrk(tg, lua, o.headers, o.duration, o.conns, pids)
			if profiled != nil {
				<-profiled
			}
			res[tg.name] = append(res[tg.name], x)
			fmt.Printf("  round %d %-34s %8.0f req/s  p50 %-8v p99 %-8v cpu %5.1f µs/req\n", r+1, tg.name, x.rps, x.p50, x.p99, x.cpuPerReq)
		}
	}
	rss := benchkit.RSS(c.Cmd.Process.Pid)
	var summary []string
	fmt.Printf("[%s store] medians over %d rounds (Caddy RSS after the rounds: %d MiB):\n", st, o.rounds, rss>>20)
	for _, tg := range targets {
		m := median(res[tg.name])
		line := fmt.Sprintf("%-9s %-34s %8.0f req/s  p50 %-8v p99 %-8v cpu %5.1f µs/req", st, tg.name, m.rps, m.p50, m.p99, m.cpuPerReq)
		for _, base := range []string{tg.base, tg.also} {
			if base == "" {
				continue
			}
			var ratios []float64
			for i, x := range res[tg.name] {
				ratios = append(ratios, x.rps/res[base][i].rps)
			}
			sort.Float64s(ratios)
			line += fmt.Sprintf("  ratio to %s: %.2f", base, ratios[len(ratios)/2])
		}
		fmt.Println("  " + line)
		summary = append(summary, line)
	}
	summary = append(summary, fmt.Sprintf("%-9s Caddy RSS after the rounds: %d MiB (%d sessions on each of 2 sites)", st, rss>>20, o.sessions))
	return summary
}

// check makes sure tg answers from the upstream with a session's cookie,
// so the benchmark never measures redirects.
func check(tg target) {
	b, err := os.ReadFile(tg.cookies)
	if err != nil {
		fatal("%v", err)
	}
	cookie, _, _ := strings.Cut(string(b), "\n")
	req, _ := http.NewRequest(http.MethodGet, tg.url, nil)
	req.Host = tg.host
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fatal("%s: %v", tg.name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from the upstream") {
		fatal("%s answers %d %q, not the upstream", tg.name, resp.StatusCode, body)
	}
}

func median(rs []result) result {
	rs = append([]result(nil), rs...)
	sort.Slice(rs, func(a, b int) bool { return rs[a].rps < rs[b].rps })
	return rs[len(rs)/2]
}
