package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/internal/freeport"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/storetest"
)

// startRedis runs a real redis-server on a free loopback port until the
// test ends; args are extra server options.
func startRedis(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (run .ci/run, which installs it)")
	}
	port := freeport.Must(t)
	args = append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return ""
}

func TestConformance(t *testing.T) {
	addr := startRedis(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		// One prefix per subtest: the suite's cases do not see each other.
		s, err := Open(Options{URL: "redis://" + addr + "/0", Prefix: "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPubSubAcrossInstances(t *testing.T) {
	addr := startRedis(t)
	a, _ := Open(Options{URL: "redis://" + addr})
	b, _ := Open(Options{URL: "redis://" + addr})
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	ch, err := b.Subscribe(ctx, "gate-revoke")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := a.Publish(ctx, "gate-revoke", []byte("s1")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if string(m) != "s1" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("message did not reach the other instance")
	}
}

func TestServerDownIsAnError(t *testing.T) {
	t.Parallel() // waits out a dial timeout
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Must(t))
	s, _ := Open(Options{URL: "redis://" + addr})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping to nothing succeeded")
	}
	if _, err := s.Get(ctx, "k"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get with the server down: %v (must not look like a missing key)", err)
	}
	if _, err := Open(Options{URL: "http://x"}); err == nil {
		t.Fatal("bad URL accepted")
	}
}

// startCluster runs a one-node Redis Cluster holding every slot. One node
// is enough to test Apply: Redis refuses a script whose keys are in
// different slots (CROSSSLOT) even when one node serves them all.
func startCluster(t *testing.T) string {
	t.Helper()
	addr := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for range 250 {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("redis cluster did not become ready")
	return ""
}

// The whole suite on a cluster client: Apply's multi-key scripts work
// only because New makes the prefix a hash tag.
func TestConformanceCluster(t *testing.T) {
	t.Parallel() // a new cluster node stays down for its first two seconds
	addr := startCluster(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{addr}})
		s := New(c, "test:"+strings.ReplaceAll(t.Name(), "/", ":")+":")
		if !strings.HasPrefix(s.prefix, "{test:") {
			t.Fatalf("cluster prefix %q is not a hash tag", s.prefix)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPrefixPerMode(t *testing.T) {
	two := []string{"127.0.0.1:1", "127.0.0.1:2"}
	cases := []struct {
		name string
		opt  Options
		want string
	}{
		{"url", Options{URL: "redis://127.0.0.1:1"}, "gatehouse:"},
		{"one address", Options{Addrs: two[:1]}, "gatehouse:"},
		{"sentinel", Options{Addrs: two, MasterName: "mymaster"}, "gatehouse:"},
		{"cluster", Options{Addrs: two}, "{gatehouse}:"},
		{"cluster, own prefix", Options{Addrs: two, Prefix: "app:"}, "{app}:"},
		{"cluster, own tag", Options{Addrs: two, Prefix: "{app}:x:"}, "{app}:x:"},
		{"single, own prefix", Options{Addrs: two[:1], Prefix: "app"}, "app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.prefix != tc.want {
				t.Fatalf("prefix %q, want %q", s.prefix, tc.want)
			}
		})
	}
}

func TestHashTag(t *testing.T) {
	for in, want := range map[string]string{
		"gatehouse:": "{gatehouse}:",
		"app":        "{app}",
		"a:b:":       "{a:b}:",
		":":          "{:}", // "{}" would hash the whole key
		"x{y}:":      "x{y}:",
		"x{":         "x{",
	} {
		if got := hashTag(in); got != want {
			t.Errorf("hashTag(%q) = %q, want %q", in, got, want)
		}
	}
}
