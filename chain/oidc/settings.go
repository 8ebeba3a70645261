package oidc

import (
	"errors"
	"fmt"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
	"net/url"
	"slices"
	"strings"
)

// Settings of an oidc module.
type Settings struct {
	// Issuer is the provider's issuer URL; its discovery document is
	// read from <issuer>/.well-known/openid-configuration.
	Issuer string `json:"issuer"`
	// ClientID and ClientSecret are what the provider registered for
	// this module (its redirect URI is the module's callback,
	// <issuer origin><login path>/m/<name>/callback). Without a
	// secret the module is a public client (PKCE only). Placeholders
	// such as {env.CORP_SECRET} are replaced when the server starts.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes asked for; default openid email profile ("openid" is
	// always asked).
	Scopes []string `json:"scopes,omitempty"`
	// AcrValues are sent to the provider with every sign-in (after
	// those that acr_levels maps to a level the sign-in asks for).
	AcrValues []string `json:"acr_values,omitempty"`
	// AcrLevels maps the provider's acr to this chain's levels:
	// entries "<remote acr>=<level>"; a sign-in whose ID token carries
	// that acr reaches that level (one of the module's levels). The
	// module's first level is reached by every sign-in.
	AcrLevels []string `json:"acr_levels,omitempty"`
	// AMRLevels likewise maps a method the provider names in amr
	// ("<remote amr>=<level>", e.g. "mfa=2").
	AMRLevels []string `json:"amr_levels,omitempty"`
	// Claims to read the local account's profile from (in the ID token,
	// else the userinfo): defaults preferred_username, email, name,
	// groups.
	UsernameClaim string `json:"username_claim,omitempty"`
	EmailClaim    string `json:"email_claim,omitempty"`
	NameClaim     string `json:"name_claim,omitempty"`
	GroupsClaim   string `json:"groups_claim,omitempty"`
	// UsernamePrefix is put before the username of an account made at
	// a first sign-in (from the username claim, else the address's
	// local part): a provider's users choose their names there, and a
	// prefix keeps them from taking one that means something here
	// ("admin") to an application reading Remote-User.
	UsernamePrefix string `json:"username_prefix,omitempty"`
	// AllowedDomains admits only people whose verified address is at
	// one of these domains ("acme.example", or "*.acme.example" for its
	// subdomains).
	AllowedDomains []string `json:"allowed_domains,omitempty"`
	// AllowedGroups admits only members of one of these groups (read
	// from the groups claim).
	AllowedGroups []string `json:"allowed_groups,omitempty"`
	// Accounts says what happens at a first sign-in by an identity no
	// account has: "create" makes an account; "link_only" signs in
	// only identities already linked (on the account page);
	// "registration" (the default) creates accounts only when the chain
	// has an enabled registration module (people may sign up anyway).
	Accounts string `json:"accounts,omitempty"`
	// EmailVerifiedClaim is the claim saying the address is verified:
	// default email_verified (microsoft: xms_edov, Entra ID's "the
	// domain owner verified it", as Entra's email claim is not).
	EmailVerifiedClaim string `json:"email_verified_claim,omitempty"`
	// Tenant is the Entra ID tenant (its id) of a microsoft module.
	Tenant string `json:"tenant,omitempty"`
	// TrustEmail treats the provider's addresses as verified even
	// without email_verified (a provider that verifies every address
	// but does not say so). Only set it for such a provider: a
	// verified address names an existing account.
	TrustEmail bool `json:"trust_email,omitempty"`
	// Label is the provider's name on the sign-in button ("Sign in
	// with <label>"); default the module's name.
	Label string `json:"label,omitempty"`
	// LogoutUpstream: after signing out here, a person who signed in
	// through this provider is offered to sign out there too (its
	// end_session_endpoint, RP-Initiated Logout 1.0).
	LogoutUpstream bool `json:"logout_upstream,omitempty"`
	// LogoutEvery: a back-channel logout token naming only the remote
	// subject (no sid) ends every session that came through this
	// module for that person (the default); false: such a token ends
	// nothing.
	LogoutEvery *bool `json:"logout_every,omitempty"`
}

// Accounts policies.
const (
	AccountsCreate       = "create"
	AccountsLinkOnly     = "link_only"
	AccountsRegistration = "registration"
)

// Validate checks the settings (also when `caddy adapt` reads them).
func (s *Settings) Validate() error {
	if s.Tenant != "" {
		return errors.New("tenant is a setting of kind microsoft")
	}
	return s.validate()
}

func (s *Settings) validate() error {
	if err := checkIssuer(s.Issuer); err != nil {
		return err
	}
	if s.ClientID == "" {
		return errors.New("client_id is required")
	}
	if err := checkAccounts(s.Accounts); err != nil {
		return err
	}
	if _, err := parseLevelMap("acr_levels", s.AcrLevels); err != nil {
		return err
	}
	if _, err := parseLevelMap("amr_levels", s.AMRLevels); err != nil {
		return err
	}
	if _, err := parseDomains(s.AllowedDomains); err != nil {
		return err
	}
	if err := checkPrefix(s.UsernamePrefix); err != nil {
		return err
	}
	for _, sc := range s.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\n\"\\") {
			return fmt.Errorf("scopes: %q is no scope", sc)
		}
	}
	return nil
}

func checkAccounts(a string) error {
	switch a {
	case "", AccountsCreate, AccountsLinkOnly, AccountsRegistration:
		return nil
	}
	return fmt.Errorf("accounts is create, link_only or registration, not %q", a)
}

// place reads where instance d stands in its chain: its levels, and
// whether its accounts setting lets it make accounts (registration:
// when the chain has an enabled sign-up module).
func place(d chain.Deps, accounts string) (levels []string, create bool) {
	registration := false
	for _, mc := range d.Chain {
		if mc.Name == d.Name {
			levels = mc.Levels
		}
		registration = registration || (mc.Kind == "registration" && !mc.Disabled)
	}
	return levels, accounts == AccountsCreate || ((accounts == "" || accounts == AccountsRegistration) && registration)
}

// checkPrefix: a username prefix holds what usernames may.
func checkPrefix(p string) error {
	if p != "" && (len(p) > 16 || users.ValidateUsername(p) != nil || strings.Contains(p, "@")) {
		return fmt.Errorf("username_prefix %q: up to 16 letters, digits, '.', '_', '-'", p)
	}
	return nil
}

// checkIssuer: an https URL (http only on loopback, for tests and
// local development), no query or fragment.
func checkIssuer(issuer string) error {
	if issuer == "" {
		return errors.New("issuer is required")
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer %q is no https URL without query or fragment", issuer)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !loopback(u.Hostname())) {
		return fmt.Errorf("issuer %q must be https (http only on localhost)", issuer)
	}
	return nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// levelMap maps a remote value (acr or amr) to the levels it reaches.
type levelMap map[string][]string

// maxMapEntries bounds a level map.
const maxMapEntries = 64

// parseLevelMap reads entries "<remote value>=<level>": the level is
// after the last "=" (remote acr values are URIs that may hold one).
func parseLevelMap(setting string, entries []string) (levelMap, error) {
	if len(entries) > maxMapEntries {
		return nil, fmt.Errorf("%s: at most %d entries", setting, maxMapEntries)
	}
	m := levelMap{}
	for _, e := range entries {
		i := strings.LastIndexByte(e, '=')
		if i <= 0 || i == len(e)-1 {
			return nil, fmt.Errorf("%s: %q is not <remote value>=<level>", setting, e)
		}
		remote, level := e[:i], e[i+1:]
		if strings.TrimSpace(remote) != remote || strings.TrimSpace(level) != level || strings.ContainsAny(level, " \t\n") {
			return nil, fmt.Errorf("%s: %q has spaces around its parts", setting, e)
		}
		if !slices.Contains(m[remote], level) {
			m[remote] = append(m[remote], level)
		}
	}
	return m, nil
}

// levels is every level the map names.
func (m levelMap) levels() []string {
	var out []string
	for _, ls := range m {
		for _, l := range ls {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// domainList is allowed_domains: exact domains and "*." suffixes,
// compared lower case.
type domainList struct{ exact, suffix []string }

func parseDomains(list []string) (domainList, error) {
	var d domainList
	for _, e := range list {
		e = strings.ToLower(e)
		name, wild := strings.CutPrefix(e, "*.")
		if name == "" || strings.ContainsAny(name, "@/ *") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			return domainList{}, fmt.Errorf("allowed_domains: %q is not a domain (or *.domain)", e)
		}
		if wild {
			d.suffix = append(d.suffix, "."+name)
		} else {
			d.exact = append(d.exact, name)
		}
	}
	return d, nil
}

func (d domainList) empty() bool { return len(d.exact) == 0 && len(d.suffix) == 0 }

// admits reports whether address's domain is on the list.
func (d domainList) admits(address string) bool {
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return false
	}
	dom := strings.ToLower(address[at+1:])
	if slices.Contains(d.exact, dom) {
		return true
	}
	for _, s := range d.suffix {
		if strings.HasSuffix(dom, s) {
			return true
		}
	}
	return false
}
