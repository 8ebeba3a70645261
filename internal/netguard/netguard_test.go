package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:4700::6810:85e5": true, "8.8.8.8": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::7": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "224.0.0.1": false, "ff02::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"192.0.2.1": false, "2001:db8::1": false, "64:ff9b::7f00:1": false, "2002:7f00:1::": false, "255.255.255.255": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// fakeResolver answers every name with its addresses.
type fakeResolver []netip.Addr

func (f fakeResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return f, nil
}

func TestDialerRefusesWhatResolvesInside(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		addrs fakeResolver
		host  string
	}{
		{"a name that resolves to loopback", fakeResolver{netip.MustParseAddr("127.0.0.1")}, "rebind.example"},
		{"one public, one private", fakeResolver{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.1")}, "mixed.example"},
		{"a literal loopback", nil, "127.0.0.1"},
		{"a literal mapped address", nil, "::ffff:127.0.0.1"},
	} {
		d := &Dialer{Resolver: tc.addrs, Dialer: net.Dialer{Timeout: time.Second}}
		if _, err := d.DialContext(ctx, "tcp", net.JoinHostPort(tc.host, port)); !errors.Is(err, ErrNotPublic) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	c := Client(time.Second)
	if _, err := c.Get(srv.URL); !errors.Is(err, ErrNotPublic) {
		t.Errorf("client to a loopback test server: %v", err)
	}
}

func FuzzPublic(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add(netip.MustParseAddr("::ffff:10.0.0.1").AsSlice())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok || !Public(a) {
			return
		}
		u := a.Unmap()
		if u.IsLoopback() || u.IsPrivate() || u.IsUnspecified() || u.IsLinkLocalUnicast() || u.IsMulticast() {
			t.Fatalf("%s is called public", a)
		}
	})
}
