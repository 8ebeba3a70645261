package registration

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// domains is the list of mail domains sign-up is limited to. Each entry
// is a domain in its ASCII form (IDNA: "bücher.example" becomes
// "xn--bcher-kva.example"), lower case; an entry written "*.acme.example"
// stands for every subdomain of acme.example, at any depth, and not for
// acme.example itself.
type domains struct {
	exact []string
	under []string // the "*." entries, without the "*"
	shown []string // as configured, for people
}

// maxDomain is DNS's limit on a name, in its ASCII form.
const maxDomain = 253

// asciiDomain is a domain's ASCII form for comparing, or an error when
// it is no valid host name (IDNA lookup rules: letters, digits and
// hyphens in labels of up to 63 characters, no empty label).
func asciiDomain(s string) (string, error) {
	if s == "" || strings.HasSuffix(s, ".") {
		return "", errors.New("a domain has no empty label (and no final dot)")
	}
	a, err := idna.Lookup.ToASCII(s)
	if err != nil || len(a) > maxDomain || slices.ContainsFunc(strings.Split(a, "."), func(l string) bool { return l == "" || len(l) > 63 }) {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	return a, nil
}

// parseDomains reads the email_domains setting.
func parseDomains(list []string) (domains, error) {
	var d domains
	for _, entry := range list {
		name, wild := strings.CutPrefix(entry, "*.")
		a, err := asciiDomain(name)
		if err != nil {
			return domains{}, fmt.Errorf("email_domains: %w", err)
		}
		if wild {
			d.under = append(d.under, "."+a)
		} else {
			d.exact = append(d.exact, a)
		}
		d.shown = append(d.shown, entry)
	}
	return d, nil
}

// any reports whether sign-up is limited to some domains.
func (d domains) any() bool { return len(d.shown) > 0 }

// allows reports whether the domain of address (the part after its last
// "@") is one of the list's. An address whose domain is no valid host
// name is not allowed.
func (d domains) allows(address string) bool {
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return false
	}
	a, err := asciiDomain(address[at+1:])
	if err != nil {
		return false
	}
	return slices.Contains(d.exact, a) || slices.ContainsFunc(d.under, func(suffix string) bool { return strings.HasSuffix(a, suffix) })
}

// String lists the domains for people.
func (d domains) String() string { return strings.Join(d.shown, ", ") }
