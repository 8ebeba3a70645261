package oidc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/chain"
)

// mapping names the claims a module reads its profile from.
type mapping struct {
	username, email, name, groups, verified string
	prefix                                  string
	trustEmail                              bool
}

func newMapping(s Settings) mapping {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	return mapping{
		username: or(s.UsernameClaim, "preferred_username"), email: or(s.EmailClaim, "email"),
		name: or(s.NameClaim, "name"), groups: or(s.GroupsClaim, "groups"), verified: or(s.EmailVerifiedClaim, "email_verified"),
		trustEmail: s.TrustEmail, prefix: s.UsernamePrefix,
	}
}

// Bounds of what is taken from a remote provider's claims.
const (
	maxClaimLen = 256
	maxGroups   = 256
)

// claims maps a remote provider's claims (the ID token's, with the
// userinfo's added) to the identity the module passes with. It refuses
// what no honest provider sends: no subject, a claim of the wrong type,
// oversized values.
func (m mapping) claims(issuer string, raw map[string]any) (chain.Claims, error) {
	c := chain.Claims{Issuer: issuer}
	var err error
	str := func(name string) string {
		if err != nil || name == "" {
			return ""
		}
		v, ok := raw[name]
		if !ok || v == nil {
			return ""
		}
		s, isStr := v.(string)
		switch {
		case !isStr:
			err = fmt.Errorf("claim %s is not a string", name)
		case len(s) > maxClaimLen:
			err = fmt.Errorf("claim %s is longer than %d bytes", name, maxClaimLen)
		case strings.ContainsAny(s, "\x00\r\n"):
			err = fmt.Errorf("claim %s holds control characters", name)
		}
		return s
	}
	c.Subject = str("sub")
	c.PreferredUsername = str(m.username)
	c.Email = str(m.email)
	c.Name = str(m.name)
	c.GivenName = str("given_name")
	c.FamilyName = str("family_name")
	if err != nil {
		return chain.Claims{}, err
	}
	if c.Subject == "" {
		return chain.Claims{}, fmt.Errorf("no sub claim")
	}
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		c.Email = "" // not an address: nothing to verify or store
	}
	c.EmailVerified = c.Email != "" && (m.trustEmail || truthy(raw[m.verified]))
	if m.prefix != "" {
		base := c.PreferredUsername
		if base == "" {
			base, _, _ = strings.Cut(c.Email, "@")
		}
		if base == "" {
			base = c.Subject
		}
		c.PreferredUsername = m.prefix + base
	}
	if c.Groups, err = stringList(raw[m.groups], m.groups); err != nil {
		return chain.Claims{}, err
	}
	return c, nil
}

// truthy reads a boolean claim; some providers send "true" as a string.
func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

// stringList reads a claim holding a string or a list of strings.
func stringList(v any, name string) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		if len(x) > maxClaimLen {
			return nil, fmt.Errorf("claim %s is longer than %d bytes", name, maxClaimLen)
		}
		return []string{x}, nil
	case []any:
		if len(x) > maxGroups {
			return nil, fmt.Errorf("claim %s has more than %d values", name, maxGroups)
		}
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok || len(s) > maxClaimLen {
				return nil, fmt.Errorf("claim %s holds a value that is no short string", name)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("claim %s is neither a string nor a list of strings", name)
}

// reached are the levels a sign-in reached: the module's first, and
// those its acr and amr values map to.
func reached(levels []string, acrs, amrs levelMap, acr string, amr []string) []string {
	out := []string{levels[0]}
	add := func(ls []string) {
		for _, l := range ls {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	if acr != "" {
		add(acrs[acr])
	}
	for _, v := range amr {
		add(amrs[v])
	}
	return out
}

// methods keeps the remote amr values RFC 8176 registers; others (and
// none at all) are not passed on: a value we made up would tell relying
// parties nothing true.
func methods(amr []string) []string {
	var out []string
	for _, v := range amr {
		if chain.RegisteredAMR(v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
