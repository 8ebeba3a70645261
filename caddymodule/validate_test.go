package caddymodule

import (
	"strings"
	"testing"
)

func TestValidatingArgs(t *testing.T) {
	for args, want := range map[string]bool{
		"caddy validate --config Caddyfile":               true,
		"caddy adapt --config Caddyfile --validate":       true,
		"caddy run --config Caddyfile":                    false,
		"caddy gatehouse user add alice":                  false,
		"caddy":                                           false,
		"caddy --help":                                    false,
		"caddy reload --config validate":                  false,
		"/usr/bin/caddy validate --adapter caddyfile":     true,
		"caddy start --config /etc/caddy/adapt/Caddyfile": false,
	} {
		if got := validatingArgs(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}
