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

	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/storetest"
)

// startRedis runs a real redis-server on a free loopback port until the
// test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (run .ci/run, which installs it)")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
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
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
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
