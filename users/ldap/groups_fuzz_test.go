package ldap

import (
	"strings"
	"testing"
)

// Group names come from what the directory holds: whatever it is, they
// never panic the mapping and never carry a separator of Remote-Groups.
func FuzzGroupNames(f *testing.F) {
	f.Add("cn=admins,ou=groups,dc=acme,dc=example", "CN=Domain Users,CN=Users,DC=corp,DC=acme")
	f.Add(`cn=a\2cb,ou=g`, "cn=x+uid=y,dc=z")
	f.Add("not a dn", "cn=,dc=x")
	f.Add("cn=line\nbreak,dc=x", "=")
	f.Fuzz(func(t *testing.T, a, b string) {
		gs := cleanGroups([]string{groupName(a), groupName(b), a})
		seen := map[string]bool{}
		for _, g := range gs {
			if g == "" || strings.ContainsAny(g, ",\r\n\x00") || seen[g] {
				t.Fatalf("group %q from %q, %q", g, a, b)
			}
			seen[g] = true
		}
	})
}
