package caddymodule

import (
	"fmt"
	"testing"
)

// Bad settings of the registration and activation kinds are refused by
// `caddy adapt`, each error exactly as shown, naming the line: the
// setting's own, or the module's for settings wrong together.
func TestSignupCaddyfileErrors(t *testing.T) {
	// The module's block starts at line 6, its first setting is line 8.
	chainOf := func(kind, settings string) string {
		return fmt.Sprintf("{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tchain {\n\t\t\tpassword { \n\t\t\t}\n\t\t\tmod {\n\t\t\t\tkind %s\n%s\n\t\t\t}\n\t\t}\n\t}\n}\n", kind, settings)
	}
	cases := []struct{ kind, settings, want string }{
		{"registration", "open maybe", `module mod: setting open: is true or false, not "maybe", at Caddyfile:9`},
		{"registration", "email_domains", `module mod: setting email_domains: needs at least one value, at Caddyfile:9`},
		{"registration", "email_domains acme.example ac/me.example", `module mod: email_domains: "ac/me.example" is not a domain name, at Caddyfile:7`},
		{"registration", "email_domains acme.example.", `module mod: email_domains: a domain has no empty label (and no final dot), at Caddyfile:7`},
		{"registration", "open\nemail_domains acme.example", `module mod: open true lets anyone sign up and email_domains only those domains: leave out one of the two, at Caddyfile:7`},
		{"registration", "open false", `module mod: open false without email_domains lets nobody sign up: list the domains that may, or disable the module, at Caddyfile:7`},
		{"registration", "per_address -1", `module mod: per_address and per_hour are numbers of sign-ups an hour, not below zero, at Caddyfile:7`},
		{"registration", "per_hour many", `module mod: setting per_hour: is a whole number, not "many", at Caddyfile:9`},
		{"registration", "welcome yes", `module mod: setting welcome: is true or false, not "yes", at Caddyfile:9`},
		{"registration", "domains acme.example", `module mod: setting domains: kind registration has no setting "domains" (known: email_domains, open, per_address, per_hour, welcome), at Caddyfile:9`},
		{"activation", "link_ttl soon", `module mod: setting link_ttl: "soon" is not a duration (like 15m, 36h or 30d), at Caddyfile:9`},
		{"activation", "link_ttl 30d", `module mod: link_ttl must be between 1m and 7d, not 720h0m0s, at Caddyfile:7`},
		{"activation", "link_ttl 30s", `module mod: link_ttl must be between 1m and 7d, not 30s, at Caddyfile:7`},
		{"activation", "activation_level a b", `module mod: setting activation_level: takes one value, not 2, at Caddyfile:9`},
		{"activation", "ttl 1h", `module mod: setting ttl: kind activation has no setting "ttl" (known: activation_level, link_ttl, welcome), at Caddyfile:9`},
	}
	for _, c := range cases {
		t.Run(c.kind+" "+c.settings, func(t *testing.T) {
			_, err := adapt(t, chainOf(c.kind, "\t\t\t\t"+c.settings))
			if err == nil || err.Error() != "parsing caddyfile tokens for 'gatehouse': "+c.want {
				t.Fatalf("error\n  %v\nwant\n  %s", err, c.want)
			}
		})
	}
}
