package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-idp/gatehouse/users"
)

// Source is a user source over an LDAP directory (OpenLDAP, Active
// Directory): it finds people with a service account's search, checks
// their passwords by binding as them, and reads their groups from an
// attribute (memberOf) or a group search.
type Source struct {
	s          Settings
	pool       *pool
	userFilter template
	groups     *template
	attrs      []string
}

// DefaultTimeout bounds each wait for a connection, each dial and each
// request.
const DefaultTimeout = 5 * time.Second

// New returns a source; it connects on first use. timeout 0 is
// DefaultTimeout.
func New(s Settings, timeout time.Duration) (*Source, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.withDefaults()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	src := &Source{s: s}
	src.userFilter, _ = parseTemplate(s.UserFilter, "login")
	if g := s.GroupSearch; g != nil {
		t, _ := parseTemplate(g.Filter, "dn", "login")
		src.groups = &t
	}
	a := s.Attributes
	src.attrs = []string{a.ID, a.Username, a.Email, a.Name, a.GivenName, a.FamilyName}
	if a.Groups != "" {
		src.attrs = append(src.attrs, a.Groups)
	}
	u, _ := url.Parse(s.URL) // checked by Validate
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", s.CAFile)
		}
	}
	src.pool = newPool(s.URL, s.StartTLS, tc, s.Pool, timeout)
	return src, nil
}

// Name is the source's name.
func (s *Source) Name() string { return s.s.Name }

// Close closes its connections.
func (s *Source) Close() error {
	s.pool.close()
	return nil
}

// Authenticate finds login and binds as it with password.
func (s *Source) Authenticate(ctx context.Context, login, password string) (users.Entry, error) {
	if login == "" || password == "" {
		// An empty password would be an unauthenticated bind, which
		// servers answer with success (RFC 4513 §5.1.2).
		return users.Entry{}, users.ErrInvalidCredentials
	}
	var e users.Entry
	err := s.pool.do(ctx, func(c *goldap.Conn) error {
		if err := s.bindService(c); err != nil {
			return err
		}
		ent, err := s.find(c, s.userFilter.expand(map[string]string{"login": login}), s.s.BaseDN, goldap.ScopeWholeSubtree)
		if err != nil {
			return err
		}
		if err := c.Bind(ent.DN, password); err != nil {
			if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
				return users.ErrInvalidCredentials
			}
			return fmt.Errorf("binding as %s: %w", ent.DN, err)
		}
		// Groups are read as the service account: people may not be
		// allowed to read them.
		if err := s.bindService(c); err != nil {
			return err
		}
		e, err = s.entry(c, ent)
		return err
	})
	if errors.Is(err, users.ErrNotFound) {
		err = users.ErrInvalidCredentials
	}
	return e, err
}

// Lookup finds login without a password.
func (s *Source) Lookup(ctx context.Context, login string) (users.Entry, error) {
	if login == "" {
		return users.Entry{}, users.ErrNotFound
	}
	return s.search(ctx, s.userFilter.expand(map[string]string{"login": login}), s.s.BaseDN, goldap.ScopeWholeSubtree, false)
}

// Refresh reads the entry with id again, and checks that the user
// filter still matches it.
func (s *Source) Refresh(ctx context.Context, id string) (users.Entry, error) {
	var (
		base   = s.s.BaseDN
		scope  = goldap.ScopeWholeSubtree
		filter string
	)
	if dn, ok := strings.CutPrefix(id, "dn:"); ok {
		base, scope, filter = dn, goldap.ScopeBaseObject, "(objectClass=*)"
	} else {
		attr, val, ok := strings.Cut(id, ":")
		raw, err := hex.DecodeString(val)
		if !ok || !strings.EqualFold(attr, s.s.Attributes.ID) || err != nil || len(raw) == 0 {
			return users.Entry{}, users.ErrNotFound // an id of another configuration
		}
		filter = byteFilter(s.s.Attributes.ID, raw)
	}
	return s.search(ctx, filter, base, scope, true)
}

// search finds the one entry filter matches under base. refilter: the
// user filter must still match it, by its current username (whoever it
// no longer matches is refused).
func (s *Source) search(ctx context.Context, filter, base string, scope int, refilter bool) (users.Entry, error) {
	var e users.Entry
	err := s.pool.do(ctx, func(c *goldap.Conn) error {
		if err := s.bindService(c); err != nil {
			return err
		}
		ent, err := s.find(c, filter, base, scope)
		if err != nil {
			return err
		}
		if refilter {
			f := s.userFilter.expand(map[string]string{"login": ent.GetAttributeValue(s.s.Attributes.Username)})
			if ent, err = s.find(c, f, ent.DN, goldap.ScopeBaseObject); err != nil {
				return err
			}
		}
		e, err = s.entry(c, ent)
		return err
	})
	return e, err
}

func (s *Source) bindService(c *goldap.Conn) error {
	var err error
	if s.s.BindDN == "" {
		err = c.UnauthenticatedBind("")
	} else {
		err = c.Bind(s.s.BindDN, s.s.BindPassword)
	}
	if err != nil {
		return fmt.Errorf("binding as the service account: %w", err)
	}
	return nil
}

// find returns the one entry filter matches; users.ErrNotFound when none
// or several do (a login must name one person, never the first of many).
func (s *Source) find(c *goldap.Conn, filter, base string, scope int) (*goldap.Entry, error) {
	res, err := c.Search(goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases, 2, 0, false, filter, s.attrs, nil))
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		return nil, users.ErrNotFound
	case goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded):
		return nil, users.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("searching %s: %w", base, err)
	case len(res.Entries) != 1:
		return nil, users.ErrNotFound
	}
	return res.Entries[0], nil
}

// maxGroups bounds the groups read for one person.
const maxGroups = 1000

// entry makes the account's view of ent.
func (s *Source) entry(c *goldap.Conn, ent *goldap.Entry) (users.Entry, error) {
	a := s.s.Attributes
	e := users.Entry{
		ID:         entryID(ent, a.ID),
		Username:   ent.GetAttributeValue(a.Username),
		Email:      ent.GetAttributeValue(a.Email),
		Name:       ent.GetAttributeValue(a.Name),
		GivenName:  ent.GetAttributeValue(a.GivenName),
		FamilyName: ent.GetAttributeValue(a.FamilyName),
	}
	e.EmailVerified = s.s.EmailVerified && e.Email != ""
	if e.Username == "" {
		return users.Entry{}, fmt.Errorf("%s has no %s (the username attribute)", ent.DN, a.Username)
	}
	if a.Groups != "" {
		for _, dn := range ent.GetAttributeValues(a.Groups) {
			e.Groups = append(e.Groups, groupName(dn))
		}
	}
	if g := s.s.GroupSearch; g != nil {
		f := s.groups.expand(map[string]string{"dn": ent.DN, "login": e.Username})
		res, err := c.Search(goldap.NewSearchRequest(g.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
			maxGroups, 0, false, f, []string{g.Name}, nil))
		if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			return users.Entry{}, fmt.Errorf("searching the groups of %s: %w", ent.DN, err)
		}
		if res != nil {
			for _, ge := range res.Entries {
				if n := ge.GetAttributeValue(g.Name); n != "" {
					e.Groups = append(e.Groups, n)
				}
			}
		}
	}
	e.Groups = cleanGroups(e.Groups)
	return e, nil
}

// entryID is "<attr>:<hex of the raw value>", or "dn:<DN>" for an entry
// without the id attribute.
func entryID(ent *goldap.Entry, attr string) string {
	if raw := ent.GetRawAttributeValue(attr); len(raw) > 0 {
		return attr + ":" + hex.EncodeToString(raw)
	}
	return "dn:" + ent.DN
}

// groupName is the value of a group DN's first attribute (cn=admins,… is
// admins), or the whole value when it is not a DN.
func groupName(dn string) string {
	d, err := goldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return dn
	}
	return d.RDNs[0].Attributes[0].Value
}

// cleanGroups drops empty, duplicate and unusable names (Remote-Groups
// joins them with commas) and bounds their number.
func cleanGroups(gs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range gs {
		g = strings.TrimSpace(g)
		if g == "" || seen[g] || strings.ContainsAny(g, ",\r\n\x00") || len(out) == maxGroups {
			continue
		}
		seen[g] = true
		out = append(out, g)
	}
	return out
}

var _ users.Source = (*Source)(nil)
