package registration

import (
	"strings"
	"testing"
)

func TestDomains(t *testing.T) {
	d, err := parseDomains([]string{"Acme.Example", "*.bücher.example", "xn--e1afmkfd.example"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"a@acme.example": true, "a@ACME.EXAMPLE": true, "a@shop.bücher.example": true, "a@x.y.xn--bcher-kva.example": true,
		"a@xn--e1afmkfd.example": true, "a@пример.example": true,
		"a@bücher.example": false, "a@sub.acme.example": false, "a@acme.example.org": false, "a@notacme.example": false,
		"a@acme.example.": false, "a@": false, "acme.example": false, "a@acme..example": false, "a@xbücher.example": false,
		`"a@b"@acme.example`: true, // the domain is after the last @; the address itself is checked elsewhere
	} {
		if got := d.allows(addr); got != want {
			t.Errorf("%q: %v, want %v", addr, got, want)
		}
	}
	if d.String() != "Acme.Example, *.bücher.example, xn--e1afmkfd.example" {
		t.Errorf("shown %q", d)
	}
	for _, bad := range []string{"", "*.", "*", "a..b", ".a", "a.", "a b", "a/b", "a_b.example", "*.*.example", strings.Repeat("a", 64) + ".example", "a@b", "-a.example"} {
		if _, err := parseDomains([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzDomains: no panic; what parses is allowed for the addresses at it
// (or, for "*.", at its subdomains but not itself), and an allowed
// address's domain is one of the list or under one of its "*." entries.
func FuzzDomains(f *testing.F) {
	for _, s := range []string{"acme.example|a@acme.example", "*.acme.example|a@b.acme.example", "bücher.example|a@XN--BCHER-KVA.example", "a.b|a@a..b", "*.|a@", "\u200d.example|a@\u200d.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		entry, addr, _ := strings.Cut(in, "|")
		d, err := parseDomains([]string{entry})
		if err != nil {
			if d.allows(addr) {
				t.Fatalf("an empty list allows %q", addr)
			}
			return
		}
		name, wild := strings.CutPrefix(entry, "*.")
		if !wild && !d.allows("x@"+name) {
			t.Fatalf("%q does not allow its own domain", entry)
		}
		if wild && (d.allows("x@"+name) || !d.allows("x@sub."+name)) {
			t.Fatalf("%q: itself %v, a subdomain %v", entry, d.allows("x@"+name), d.allows("x@sub."+name))
		}
		if !d.allows(addr) {
			return
		}
		at := strings.LastIndexByte(addr, '@')
		got, err := asciiDomain(addr[at+1:])
		if err != nil {
			t.Fatalf("%q allowed with an invalid domain", addr)
		}
		if !(len(d.exact) == 1 && got == d.exact[0]) && !(len(d.under) == 1 && strings.HasSuffix(got, d.under[0])) {
			t.Fatalf("%q allowed by %q (%+v)", addr, entry, d)
		}
	})
}
