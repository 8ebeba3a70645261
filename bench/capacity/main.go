// Command capacity measures what sessions cost the store: it fills a
// real redis-server with SSO sessions and gate sessions (through the
// same code the server uses: session.Manager and gate.Sessions) up to a
// million of each, and at 1k, 10k, 100k and 1M reports the bytes each
// kind adds to Redis (INFO memory) and the p50/p99 of reading a random
// one (what a gate does on a cache miss). Then it does the same on the
// embedded store (bbolt) to 100k, and reports the file size per session
// and whether the file grows again once those sessions expired and as
// many new ones came (bbolt reuses freed pages; the file never shrinks).
// Everything runs on loopback and stops by itself.
//
//	go run ./bench/capacity [-redis 1000000] [-embedded 100000]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/bench/internal/benchkit"
	"github.com/gatehouse-idp/gatehouse/gate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
	redisstore "github.com/gatehouse-idp/gatehouse/store/redis"
)

func main() {
	nRedis := flag.Int("redis", 1_000_000, "sessions of each kind in Redis (0: skip)")
	nEmbedded := flag.Int("embedded", 100_000, "sessions of each kind in the embedded store (0: skip)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "capacity")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	if *nRedis > 0 {
		r := benchkit.StartRedis(dir)
		defer r.Stop()
		st, err := redisstore.Open(redisstore.Options{URL: "redis://" + r.Addr + "/0"})
		if err != nil {
			log.Fatal(err)
		}
		raw := goredis.NewClient(&goredis.Options{Addr: r.Addr})
		fmt.Printf("capacity: Redis (%s), sessions of each kind up to %d\n", redisVersion(ctx, raw), *nRedis)
		fill(ctx, st, *nRedis, func() int64 { return usedMemory(ctx, raw) }, "bytes in Redis")
		st.Close()
	}
	if *nEmbedded > 0 {
		path := filepath.Join(dir, "gatehouse.db")
		now := time.Now()
		var shift atomic.Int64 // the clock, moved past the sessions' end
		clock := func() time.Time { return now.Add(time.Duration(shift.Load())) }
		st, err := embedded.Open(path, embedded.Options{Now: clock, SweepInterval: time.Hour})
		if err != nil {
			log.Fatal(err)
		}
		size := func() int64 {
			fi, err := os.Stat(path)
			if err != nil {
				log.Fatal(err)
			}
			return fi.Size()
		}
		fmt.Printf("\ncapacity: embedded store (bbolt), sessions of each kind up to %d\n", *nEmbedded)
		before := size()
		fill(ctx, st, *nEmbedded, size, "bytes of file")
		full := size()
		shift.Store(int64(31 * 24 * time.Hour))
		n, err := st.Sweep()
		if err != nil {
			log.Fatal(err)
		}
		now = now.Add(31 * 24 * time.Hour)
		shift.Store(0)
		fillQuiet(ctx, st, *nEmbedded, clock)
		again := size()
		fmt.Printf("  file: %d MiB empty, %d MiB with %d of each; %d records expired and swept, then as many new sessions: %d MiB (%+.0f%%)\n",
			before>>20, full>>20, *nEmbedded, n, again>>20, 100*float64(again-full)/float64(full))
		st.Close()
	}
}

// fill grows both kinds of session to n in steps; at each step it
// reports the bytes (measure) each kind added per session during the
// step, and the latency of reading a random one.
func fill(ctx context.Context, st store.Store, n int, measure func() int64, unit string) {
	sm, err := session.NewManager(ctx, st, session.Options{})
	if err != nil {
		log.Fatal(err)
	}
	gs := gate.Sessions{Store: st}
	var ssoIDs, gateIDs []string
	base := measure()
	for _, step := range steps(n) {
		added := float64(step - len(ssoIDs))
		m0 := measure()
		ssoIDs = append(ssoIDs, parallel(step-len(ssoIDs), func() string { return newSSO(ctx, sm) })...)
		m1 := measure()
		gateIDs = append(gateIDs, parallel(step-len(gateIDs), func() string { return newGate(ctx, gs, ssoIDs) })...)
		m2 := measure()
		sso50, sso99 := probe(func(id string) error { _, err := sm.Get(ctx, id); return err }, ssoIDs)
		g50, g99 := probe(func(id string) error {
			s, err := gs.Load(ctx, id)
			if err == nil && s == nil {
				err = fmt.Errorf("gate session %s gone", id)
			}
			return err
		}, gateIDs)
		fmt.Printf("  %8d of each: %5.0f %s per SSO session, %5.0f per gate session (this step); %5.0f per pair in all; reading one p50/p99: SSO %v/%v, gate %v/%v\n",
			step, float64(m1-m0)/added, unit, float64(m2-m1)/added, float64(m2-base)/float64(step), sso50, sso99, g50, g99)
	}
}

// fillQuiet makes n more sessions of each kind, reporting nothing.
func fillQuiet(ctx context.Context, st store.Store, n int, now func() time.Time) {
	sm, err := session.NewManager(ctx, st, session.Options{Now: now})
	if err != nil {
		log.Fatal(err)
	}
	gs := gate.Sessions{Store: st, Now: now}
	ids := parallel(n, func() string { return newSSO(ctx, sm) })
	parallel(n, func() string { return newGate(ctx, gs, ids) })
}

func steps(n int) []int {
	var out []int
	for s := 1000; s < n; s *= 10 {
		out = append(out, s)
	}
	return append(out, n)
}

// parallel runs fn n times on 16 goroutines and returns the ids.
func parallel(n int, fn func() string) []string {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				out[i] = fn()
			}
		}()
	}
	wg.Wait()
	return out
}
