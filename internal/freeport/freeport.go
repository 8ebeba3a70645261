// Package freeport hands tests and benchmarks TCP ports on 127.0.0.1.
//
// A port is free when it is handed out, and never handed out twice in
// one process: once the probing listener is closed the kernel may offer
// the same port again, and Caddy listens with SO_REUSEPORT, so two of
// its listeners on one port would both start and share the requests.
package freeport

import (
	"fmt"
	"net"
	"sync"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Port returns a TCP port free on 127.0.0.1 now that this process was
// not given before.
func Port() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[p] {
			given[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("freeport: no port that was not given before")
}

// TB is the part of testing.TB that Must needs.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Must is Port for a test: it fails t when there is no port.
func Must(t TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
