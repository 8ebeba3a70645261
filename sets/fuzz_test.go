package sets

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/gatehouse-idp/gatehouse/internal/netguard"
)

// FuzzReadRefusal: whatever a receiver answers with its 400, the error
// that reaches the log and the audit trail is short and printable.
func FuzzReadRefusal(f *testing.F) {
	for _, s := range []string{`{"err":"invalid_key","description":"expired"}`, `{"err":"x\n\u001b[31m"}`, `not json`, `{"err":1}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msg := readRefusal(body).Error()
		if len([]rune(msg)) > 300 {
			t.Fatalf("refusal of %d runes", len([]rune(msg)))
		}
		for _, r := range msg {
			if !unicode.IsPrint(r) {
				t.Fatalf("unprintable %q in %q", r, msg)
			}
		}
	})
}

// FuzzReceiverURL: a receiver URL that passes is absolute https (or
// http to this machine), without credentials or fragment, and names no
// private address unless private_networks allows it.
func FuzzReceiverURL(f *testing.F) {
	for _, s := range []string{"https://hr.example/s", "http://127.0.0.1:9/s", "https://[::1]/", "https://10.0.0.1/", "https://a@b/", "https://h/#f", "HTTPS://LOCALHOST./x"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, private bool) {
		r := Receiver{URL: raw, PrivateNetworks: private}
		if r.Validate() != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.User != nil || strings.Contains(raw, "#") || u.Host == "" {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && netguard.LocalHost(u.Hostname())) {
			t.Fatalf("accepted scheme of %q", raw)
		}
		if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !private && !netguard.Public(a) {
			t.Fatalf("accepted the private address of %q", raw)
		}
		_ = r.audience()
	})
}
