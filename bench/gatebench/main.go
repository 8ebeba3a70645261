// Command gatebench measures what gatehouse_gate costs in front of an
// upstream, the way an intranet uses it: thousands of signed-in
// sessions spread over the connections (a wrk Lua script picks a
// session's cookie for every request), on the embedded store and on
// Redis, against plain reverse_proxy in the same run. It also measures
// the forward-auth pair: Caddy forward_auth (copying the same identity
// headers) to a server that answers an empty 200, and to Gatehouse's
// /.gatehouse/verify.
//
// Targets run in interleaved rounds; the ratio to plain is the median of
// the per-round ratios. Server CPU per request is read from /proc (Caddy,
// plus redis-server on Redis), RSS after each store's rounds. Everything
// binds to 127.0.0.1 and stops by itself.
//
//	go run ./bench/gatebench [-sessions 10000] [-rounds 3] [-duration 10s] [-connections 64] [-stores embedded,redis] [-headers browser|bare] [-upstream nginx|caddy] [-profile DIR]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/bench/internal/benchkit"
)

const caddyfile = `{
	admin 127.0.0.1:{admin}
	default_bind 127.0.0.1
	log {
		level ERROR
	}
	gatehouse {
		issuer http://auth.localhost:{idp}
		dev
		demo_user bench bench-password-for-gatebench
		{store}
	}
}

http://auth.localhost:{idp} {
	gatehouse_idp
}

{upstream}
http://:{noop} {
	respond 200
}

# The same routes as the gated site, without the gates: the pair differs
# only by the gate.
http://plain.localhost:{plain} {
	handle /store/* {
		reverse_proxy 127.0.0.1:{up}
	}
	handle /noheaders { # as on the gated site: the same routes to match
		reverse_proxy 127.0.0.1:{up}
	}
	# What sending the gate's identity headers costs by itself.
	handle /headers {
		reverse_proxy 127.0.0.1:{up} {
			header_up Remote-User bench
			header_up Remote-Email bench@gatehouse.localhost
			header_up Remote-Name "Bench User"
			header_up Remote-Groups staff,ops
			header_up Remote-Acr 1
		}
	}
	handle {
		reverse_proxy 127.0.0.1:{up}
	}
}

http://gated.localhost:{gated} {
	handle /store/* {
		gatehouse_gate {
			cache_ttl 1ms
		}
		reverse_proxy 127.0.0.1:{up}
	}
	# The gate's decision alone: it sends no identity headers.
	handle /noheaders {
		gatehouse_gate {
			headers off
		}
		reverse_proxy 127.0.0.1:{up}
	}
	handle /headers { # as on the plain site: the same routes to match
		gatehouse_gate
		reverse_proxy 127.0.0.1:{up}
	}
	handle {
		gatehouse_gate
		reverse_proxy 127.0.0.1:{up}
	}
}

http://fanoop.localhost:{fanoop} {
	forward_auth 127.0.0.1:{noop} {
		uri /verify
		copy_headers Remote-User Remote-Email Remote-Groups Remote-Acr
	}
	reverse_proxy 127.0.0.1:{up}
}

http://fa.localhost:{fa} {
	handle /.gatehouse/* {
		reverse_proxy 127.0.0.1:{fagate}
	}
	handle {
		forward_auth 127.0.0.1:{fagate} {
			uri /.gatehouse/verify
			copy_headers Remote-User Remote-Email Remote-Groups Remote-Acr
		}
		reverse_proxy 127.0.0.1:{up}
	}
}

http://:{fagate} {
	gatehouse_gate {
		forward_auth
		hosts http://fa.localhost:{fa}
	}
}
`

type options struct {
	sessions, rounds, conns int
	duration                time.Duration
	profileDir, headers     string
	upstream                string
}

func main() {
	var o options
	flag.IntVar(&o.sessions, "sessions", 10000, "distinct signed-in sessions the requests rotate over")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per target")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "wrk duration per run")
	flag.IntVar(&o.conns, "connections", 64, "wrk connections")
	flag.StringVar(&o.profileDir, "profile", "", "write Caddy's CPU profile of the first round of each target to this directory")
	stores := flag.String("stores", "embedded,redis", "stores to measure (embedded, redis)")
	flag.StringVar(&o.upstream, "upstream", "nginx", "the upstream application: nginx (a process of its own) or caddy (a respond site of the measured Caddy)")
	flag.StringVar(&o.headers, "headers", "browser", "request headers: browser (those of a browser opening a page) or bare (Host and Cookie only)")
	flag.Parse()
	for _, tool := range []string{"wrk", "redis-server", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil && (tool == "wrk" || tool == "redis-server" && strings.Contains(*stores, "redis") || tool == o.upstream) {
			log.Fatalf("%s is not installed (apt-get install %s)", tool, tool)
		}
	}
	dir, err := os.MkdirTemp("", "gatebench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := benchkit.Build(dir)
	if o.headers != "browser" && o.headers != "bare" {
		log.Fatalf("-headers %q: browser or bare", o.headers)
	}
	if o.upstream != "nginx" && o.upstream != "caddy" {
		log.Fatalf("-upstream %q: nginx or caddy", o.upstream)
	}
	fmt.Printf("gatebench: %d sessions, %d rounds x %v per target, %d connections, 2 wrk threads, loopback, %d cores, %s requests, upstream %s\n",
		o.sessions, o.rounds, o.duration, o.conns, numCPU(), o.headers, o.upstream)
	var summary []string
	for _, st := range strings.Split(*stores, ",") {
		summary = append(summary, measureStore(bin, filepath.Join(dir, st), st, o)...)
	}
	fmt.Println("\nsummary:")
	for _, l := range summary {
		fmt.Println("  " + l)
	}
}

// stop ends what the run started; fatal (and a benchkit failure) calls
// it first, so no failure leaves a server behind.
var stop = func() {}

func init() { benchkit.Cleanup = func() { stop() } }

func fatal(format string, args ...any) {
	stop()
	log.Fatalf(format, args...)
}
