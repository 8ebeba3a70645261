package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsAreFreeAndNeverTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 2000 {
		p := Must(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p := Must(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d is not free: %v", p, err)
	}
	l.Close()
}
