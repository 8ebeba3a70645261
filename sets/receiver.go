package sets

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/internal/netguard"
)

// Receiver is one endpoint SETs are pushed to.
type Receiver struct {
	// URL receives each SET in a POST (RFC 8935): https, or http to
	// this machine (localhost) only.
	URL string `json:"url"`
	// Audience is the aud claim of its SETs; default: the URL's origin
	// (scheme://host[:port]).
	Audience string `json:"audience,omitempty"`
	// Events are the kinds it receives (login, logout, user_created,
	// user_changed, user_disabled, user_enabled, user_deleted,
	// credential_changed); default: all.
	Events []string `json:"events,omitempty"`
	// Authorization, when set, is sent as the Authorization header of
	// each POST (e.g. "Bearer {env.HR_SET_TOKEN}"), for receivers that
	// authenticate the transmitter besides checking the signature.
	Authorization string `json:"authorization,omitempty"`
	// PrivateNetworks lets the receiver be on a private network or on
	// this machine. Without it only public internet addresses are
	// reached (checked when connecting, internal/netguard), so that a
	// URL cannot aim Gatehouse at a service inside the network.
	PrivateNetworks bool `json:"private_networks,omitempty"`
}

// Validate checks r (placeholders such as {env.X} already replaced).
func (r Receiver) Validate() error {
	u, err := url.Parse(r.URL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("receiver %q: not an absolute URL", r.URL)
	}
	host := u.Hostname()
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("receiver %s: the scheme must be https", r.URL)
	case u.Scheme == "http" && !netguard.LocalHost(host):
		return fmt.Errorf("receiver %s: plain http would send the SETs readable on the network; use https (http is only for localhost)", r.URL)
	case u.User != nil:
		return fmt.Errorf("receiver %s: credentials in the URL are not allowed (use authorization)", r.URL)
	case u.Fragment != "" || strings.Contains(r.URL, "#"):
		return fmt.Errorf("receiver %s: the URL must not contain a fragment", r.URL)
	}
	if !r.PrivateNetworks {
		if netguard.LocalHost(host) {
			return fmt.Errorf("receiver %s is on this machine: add private_networks to allow it", r.URL)
		}
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !netguard.Public(a) {
			return fmt.Errorf("receiver %s is not a public internet address: add private_networks to allow it", r.URL)
		}
	}
	if strings.ContainsAny(r.Authorization, "\r\n") {
		return fmt.Errorf("receiver %s: authorization must be one line", r.URL)
	}
	if err := ParseKinds(r.Events); err != nil {
		return fmt.Errorf("receiver %s: %w", r.URL, err)
	}
	return nil
}

// audience is the aud of the receiver's SETs.
func (r Receiver) audience() string {
	if r.Audience != "" {
		return r.Audience
	}
	u, _ := url.Parse(r.URL)
	return u.Scheme + "://" + u.Host
}

// wants reports whether r receives events of kind.
func (r Receiver) wants(kind string) bool {
	return len(r.Events) == 0 || slices.Contains(r.Events, kind)
}

// ValidateAll checks every receiver, and that none is listed twice.
func ValidateAll(rs []Receiver) error {
	seen := map[string]bool{}
	var errs []error
	for _, r := range rs {
		if seen[r.URL] {
			errs = append(errs, fmt.Errorf("receiver %s is configured twice", r.URL))
		}
		seen[r.URL] = true
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
