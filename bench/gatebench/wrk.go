package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/gatehouse-idp/gatehouse/bench/internal/benchkit"
)

// rotate.lua sends every request with the cookie of a session picked at
// random among those in the file named by the first script argument;
// with "browser" as the second, also with the headers a browser sends
// when it opens a page (else only Host and Cookie).
const rotateLua = `
local cookies = {}
local browser = {
  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
  ["Accept-Language"] = "en-GB,en;q=0.9",
  ["Accept-Encoding"] = "gzip, deflate, br, zstd",
  ["Referer"] = "https://intranet.example.com/",
  ["Sec-Fetch-Dest"] = "document",
  ["Sec-Fetch-Mode"] = "navigate",
  ["Sec-Fetch-Site"] = "same-origin",
  ["Upgrade-Insecure-Requests"] = "1",
}
local useBrowser = false
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  useBrowser = args[2] == "browser"
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
function request()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  if useBrowser then
    for k, v in pairs(browser) do h[k] = v end
  end
  h["Cookie"] = cookies[math.random(#cookies)]
  return wrk.format(nil, nil, h)
end
`

func writeLua(dir string) string {
	p := filepath.Join(dir, "rotate.lua")
	if err := os.WriteFile(p, []byte(rotateLua), 0o600); err != nil {
		fatal("%v", err)
	}
	return p
}

type result struct {
	rps       float64
	p50, p99  time.Duration
	cpuPerReq float64 // µs of server CPU (Caddy, and Redis when used)
}

var (
	rpsRE  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reqsRE = regexp.MustCompile(`(\d+) requests in`)
	pRE    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	nonOK  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk loads tg for d with conns connections, rotating over its
// sessions' cookies, and measures the server CPU pids spent meanwhile.
func runWrk(tg target, lua, headers string, d time.Duration, conns int, pids []int) result {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency",
		"-H", "Host: " + tg.host, "-s", lua, tg.url, "--", tg.cookies, headers}
	var cpu0 time.Duration
	for _, p := range pids {
		cpu0 += benchkit.CPU(p)
	}
	out, err := exec.Command("wrk", args...).CombinedOutput()
	if err != nil {
		fatal("wrk: %v\n%s", err, out)
	}
	var cpu time.Duration
	for _, p := range pids {
		cpu += benchkit.CPU(p)
	}
	cpu -= cpu0
	if m := nonOK.FindSubmatch(out); m != nil {
		fatal("wrk saw %s error responses against %s:\n%s", m[1], tg.name, out)
	}
	var r result
	if m := rpsRE.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := reqsRE.FindSubmatch(out); m != nil {
		if n, _ := strconv.ParseFloat(string(m[1]), 64); n > 0 {
			r.cpuPerReq = float64(cpu.Microseconds()) / n
		}
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
