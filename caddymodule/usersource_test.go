package caddymodule

import (
	"strings"
	"testing"
)

// The users ldap block is checked when the Caddyfile is adapted; an
// error names the line of the setting at fault.
func TestUserSourceCaddyfileErrors(t *testing.T) {
	// Line 1 "{", 2 "gatehouse {", 3 issuer, 4 "users ldap {", settings from line 5.
	wrap := func(settings string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tusers ldap {\n" + settings + "\n\t\t}\n\t}\n}\n"
	}
	const base = "base_dn dc=acme,dc=example\n"
	for _, tc := range []struct{ name, settings, want, line string }{
		{"no url", base, "url is required", "Caddyfile:4"},
		{"clear text", "url ldap://dc.acme.example\n" + base, "sends passwords in clear", "Caddyfile:5"},
		{"start_tls on ldaps", "url ldaps://dc.acme.example\n" + base + "start_tls", "ldaps:// is TLS already", "Caddyfile:7"},
		{"filter without login", "url ldaps://dc.acme.example\n" + base + "user_filter (uid=admin)", "does not use {login}", "Caddyfile:7"},
		{"injection-prone filter", "url ldaps://dc.acme.example\n" + base + "user_filter ({login}=x)", "may only stand in a value", "Caddyfile:7"},
		{"bad filter", "url ldaps://dc.acme.example\n" + base + `user_filter "(uid={login}"`, "not a valid LDAP filter", "Caddyfile:7"},
		{"bad base", "url ldaps://dc.acme.example\nbase_dn nodn", `base_dn "nodn"`, "Caddyfile:6"},
		{"bind dn alone", "url ldaps://dc.acme.example\n" + base + "bind_dn cn=x,dc=acme", "go together", "Caddyfile:7"},
		{"attribute", "url ldaps://dc.acme.example\n" + base + "attributes {\ngroups \"member of\"\n}", "attributes groups", "Caddyfile:8"},
		{"group filter", "url ldaps://dc.acme.example\n" + base + "group_search {\nbase_dn ou=g\nfilter (member=x)\n}", "group_search filter", "Caddyfile:9"},
		{"pool", "url ldaps://dc.acme.example\n" + base + "pool 100", "pool must be 1 to 64", "Caddyfile:7"},
		{"pool word", "url ldaps://dc.acme.example\n" + base + "pool many", "pool must be a number", "Caddyfile:7"},
		{"timeout", "url ldaps://dc.acme.example\n" + base + "timeout 1ms", "timeout must be a duration", "Caddyfile:7"},
		{"unknown", "url ldaps://dc.acme.example\n" + base + "colour red", `unknown users ldap setting "colour"`, "Caddyfile:7"},
		{"unknown attribute", "url ldaps://dc.acme.example\n" + base + "attributes {\nphoto jpegPhoto\n}", `unknown attribute "photo"`, "Caddyfile:8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, wrap(tc.settings))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.line) {
				t.Fatalf("error %v, want %q at %s", err, tc.want, tc.line)
			}
		})
	}
	if _, err := adapt(t, "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tusers redis {\n\t\t}\n\t}\n}\n"); err == nil || !strings.Contains(err.Error(), "ldap is the kind") {
		t.Fatalf("another kind: %v", err)
	}
}
