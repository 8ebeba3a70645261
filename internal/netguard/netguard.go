// Package netguard makes HTTP clients that reach only the public
// internet: for requests made on behalf of someone Gatehouse does not
// trust (a client that registered itself), so that its URLs cannot aim
// Gatehouse at its own machine or the private network (SSRF).
//
// The check is made when dialling, on the addresses the name resolved
// to, and the connection goes to the address checked: a DNS answer
// that changes between check and use (rebinding) cannot slip through.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ErrNotPublic: the address is loopback, private, link-local, shared,
// unspecified, multicast or otherwise not on the public internet.
var ErrNotPublic = errors.New("not a public internet address")

// notPublic are the special-purpose ranges beyond what netip reports
// (RFC 6890 and its updates): shared address space, benchmarking,
// documentation, IETF protocol assignments, 6to4 and NAT64 relays,
// discard-only, ORCHIDs.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
}

// Public reports whether addr is an address on the public internet.
func Public(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// LocalHost reports whether host names this machine: localhost, a
// *.localhost name (RFC 6761), or a loopback address.
func LocalHost(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Resolver is what Dialer looks names up with (net.DefaultResolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer dials only public addresses.
type Dialer struct {
	Resolver Resolver
	Dialer   net.Dialer
}

// DialContext resolves addr's host, refuses it unless every address it
// resolved to is public, and connects to one of them.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if addrs, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: no address", host)
	}
	for _, a := range addrs {
		if !Public(a) {
			return nil, fmt.Errorf("%s (%s): %w", host, a, ErrNotPublic)
		}
	}
	var last error
	for _, a := range addrs {
		c, err := d.Dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// Client returns an HTTP client that reaches only public addresses,
// follows no redirect and gives up after timeout.
func Client(timeout time.Duration) *http.Client {
	d := &Dialer{Dialer: net.Dialer{Timeout: timeout}}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // a proxy would dial for us, unchecked
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: timeout,
			MaxIdleConnsPerHost: 2,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
