package benchkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times on Linux.
const clockTicks = 100

// CPU is the user+system CPU time pid has used so far.
func CPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// RSS is the resident memory of pid, in bytes.
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Redis is a redis-server started for a benchmark.
type Redis struct {
	Addr string
	Cmd  *exec.Cmd
}

// StartRedis runs redis-server on a free loopback port, without
// persistence, in dir.
func StartRedis(dir string) *Redis {
	port := FreePort()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		fatalf("redis-server: %v (apt-get install redis-server)", err)
	}
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), Cmd: cmd}
	for range 100 {
		if c, err := net.Dial("tcp", r.Addr); err == nil {
			c.Close()
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	fatalf("redis-server did not start")
	return nil
}

// Stop ends redis-server by its PID.
func (r *Redis) Stop() {
	if r != nil && r.Cmd.Process != nil {
		r.Cmd.Process.Signal(syscall.SIGTERM)
		r.Cmd.Wait()
	}
}
