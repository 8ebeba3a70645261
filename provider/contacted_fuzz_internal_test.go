package provider

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzCheckContacted: a URL a registering client gives for the provider
// to fetch or post to, once accepted on an https provider, is https and
// names no loopback, unspecified, link-local or multicast address, read
// by either of Go's IP parsers, as the HTTP client will dial it.
func FuzzCheckContacted(f *testing.F) {
	for _, s := range []string{"https://app.example/jwks", "http://127.0.0.1:2019/stop", "https://[::1%25eth0]/x",
		"https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://169.254.169.254/", "https://LOCALHOST./", "https://a.localhost/",
		"https://[fe80::1%25en0]:8443/", "HTTPS://app.example/", "https://10.0.0.1/"} {
		f.Add(s)
	}
	p := &Provider{cfg: Config{Issuer: "https://idp.example"}}
	f.Fuzz(func(t *testing.T, raw string) {
		if p.checkContacted(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			t.Fatalf("%q accepted: %v", raw, err)
		}
		host := u.Hostname()
		if isLoopbackHost(host) {
			t.Fatalf("%q accepted with loopback host %q", raw, host)
		}
		var ips []net.IP
		if ip := net.ParseIP(host); ip != nil {
			ips = append(ips, ip)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			ips = append(ips, net.IP(a.Unmap().AsSlice()))
		}
		if h, _, ok := strings.Cut(host, "%"); ok {
			if ip := net.ParseIP(h); ip != nil {
				ips = append(ips, ip)
			}
		}
		for _, ip := range ips {
			if ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
				t.Fatalf("%q accepted, naming %v", raw, ip)
			}
		}
	})
}
