package ldap

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// Settings configure an LDAP source (the JSON of the Caddyfile's
// `users ldap` block).
type Settings struct {
	// Name names the source in account records and the audit trail;
	// default "ldap". It must not change while accounts refer to it.
	Name string `json:"name,omitempty"`
	// URL is ldaps://host[:port] or ldap://host[:port]; ldap:// needs
	// StartTLS unless the host is a loopback address.
	URL string `json:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before anything is
	// sent.
	StartTLS bool `json:"start_tls,omitempty"`
	// CAFile is a PEM file of the CAs the server's certificate is
	// checked against; default the system's.
	CAFile string `json:"ca_file,omitempty"`
	// BindDN and BindPassword are the service account that searches;
	// none: anonymous searches.
	BindDN       string `json:"bind_dn,omitempty"`
	BindPassword string `json:"bind_password,omitempty"`
	// BaseDN is where people are searched (the whole subtree).
	BaseDN string `json:"base_dn"`
	// UserFilter finds a person by what they type, {login} (escaped);
	// default (&(objectClass=person)(|(uid={login})(mail={login}))).
	// Whoever it does not match cannot sign in: add a condition to keep
	// disabled accounts out, e.g. Active Directory's
	// (!(userAccountControl:1.2.840.113556.1.4.803:=2)).
	UserFilter string `json:"user_filter,omitempty"`
	// Attributes map the entry to the account.
	Attributes Attributes `json:"attributes,omitzero"`
	// GroupSearch, when set, finds a person's groups by a search (for
	// directories without memberOf).
	GroupSearch *GroupSearch `json:"group_search,omitempty"`
	// EmailVerified: the directory's addresses are the people's own
	// (set by an admin); they are released as email_verified.
	EmailVerified bool `json:"email_verified,omitempty"`
	// Pool is how many connections are open at most (default 8): as many
	// sign-ins are checked at once; the others wait up to the timeout.
	Pool int `json:"pool,omitempty"`
}

// Attributes name the entry's attributes the account is made from.
type Attributes struct {
	// ID is the stable id (default entryUUID; objectGUID for Active
	// Directory). An entry without it is known by its DN.
	ID string `json:"id,omitempty"`
	// Username (default uid; sAMAccountName for Active Directory).
	Username string `json:"username,omitempty"`
	// Email (default mail), Name (cn), GivenName (givenName),
	// FamilyName (sn).
	Email      string `json:"email,omitempty"`
	Name       string `json:"name,omitempty"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	// Groups is an attribute listing the person's groups by DN (e.g.
	// memberOf); each group is named by its DN's first value (cn=admins,…
	// is "admins"). None by default.
	Groups string `json:"groups,omitempty"`
}

// GroupSearch finds groups whose filter matches the person.
type GroupSearch struct {
	// BaseDN is where groups are searched (the whole subtree).
	BaseDN string `json:"base_dn"`
	// Filter matches the person's groups, with {dn} (the person's DN)
	// and {login} (their username), escaped; default (member={dn}).
	Filter string `json:"filter,omitempty"`
	// Name is the attribute naming a group (default cn).
	Name string `json:"name,omitempty"`
}

// Defaults of the settings.
const (
	DefaultName       = "ldap"
	DefaultUserFilter = "(&(objectClass=person)(|(uid={login})(mail={login})))"
	DefaultPool       = 8
	maxPool           = 64
)

func (s Settings) withDefaults() Settings {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.Name, DefaultName)
	def(&s.UserFilter, DefaultUserFilter)
	a := &s.Attributes
	def(&a.ID, "entryUUID")
	def(&a.Username, "uid")
	def(&a.Email, "mail")
	def(&a.Name, "cn")
	def(&a.GivenName, "givenName")
	def(&a.FamilyName, "sn")
	if g := s.GroupSearch; g != nil {
		c := *g
		def(&c.Filter, "(member={dn})")
		def(&c.Name, "cn")
		s.GroupSearch = &c
	}
	if s.Pool == 0 {
		s.Pool = DefaultPool
	}
	return s
}

var attrName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)

// Validate checks the settings; the error names the setting.
func (s Settings) Validate() error {
	s = s.withDefaults()
	if !attrName.MatchString(s.Name) {
		return fmt.Errorf("name %q: letters, digits and - only", s.Name)
	}
	if err := checkURL(s.URL, s.StartTLS); err != nil {
		return err
	}
	if s.BaseDN == "" {
		return errors.New("base_dn is required")
	}
	if _, err := goldap.ParseDN(s.BaseDN); err != nil {
		return fmt.Errorf("base_dn %q: %v", s.BaseDN, err)
	}
	if s.BindDN != "" {
		if _, err := goldap.ParseDN(s.BindDN); err != nil {
			return fmt.Errorf("bind_dn %q: %v", s.BindDN, err)
		}
	}
	if (s.BindDN == "") != (s.BindPassword == "") {
		return errors.New("bind_dn and bind_password go together (neither: anonymous searches)")
	}
	if _, err := parseTemplate(s.UserFilter, "login"); err != nil {
		return fmt.Errorf("user_filter: %v", err)
	}
	a := s.Attributes
	for name, v := range map[string]string{"id": a.ID, "username": a.Username, "email": a.Email, "name": a.Name,
		"given_name": a.GivenName, "family_name": a.FamilyName} {
		if !attrName.MatchString(v) {
			return fmt.Errorf("attributes %s %q is not an attribute name", name, v)
		}
	}
	if a.Groups != "" && !attrName.MatchString(a.Groups) {
		return fmt.Errorf("attributes groups %q is not an attribute name", a.Groups)
	}
	if g := s.GroupSearch; g != nil {
		if g.BaseDN == "" {
			return errors.New("group_search base_dn is required")
		}
		if _, err := goldap.ParseDN(g.BaseDN); err != nil {
			return fmt.Errorf("group_search base_dn %q: %v", g.BaseDN, err)
		}
		if _, err := parseTemplate(g.Filter, "dn", "login"); err != nil {
			return fmt.Errorf("group_search filter: %v", err)
		}
		if !attrName.MatchString(g.Name) {
			return fmt.Errorf("group_search name %q is not an attribute name", g.Name)
		}
	}
	if s.Pool < 1 || s.Pool > maxPool {
		return fmt.Errorf("pool must be 1 to %d, not %d", maxPool, s.Pool)
	}
	return nil
}

func checkURL(raw string, startTLS bool) error {
	if raw == "" {
		return errors.New("url is required (ldaps://host or ldap://host with start_tls)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %v", raw, err)
	}
	if u.Host == "" || u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("url %q: want ldaps://host[:port] or ldap://host[:port], nothing more", raw)
	}
	switch u.Scheme {
	case "ldaps":
		if startTLS {
			return errors.New("start_tls is for ldap:// URLs: ldaps:// is TLS already")
		}
	case "ldap":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !startTLS && !(ip != nil && ip.IsLoopback() || host == "localhost") {
			return fmt.Errorf("url %q: ldap:// without start_tls sends passwords in clear: use ldaps:// or start_tls", raw)
		}
	default:
		return fmt.Errorf("url %q: the scheme must be ldaps or ldap", raw)
	}
	return nil
}
