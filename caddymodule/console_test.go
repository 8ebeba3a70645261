package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestConsoleCaddyfileErrors: each mistake in admin_console is found at
// caddy adapt, with its line.
func TestConsoleCaddyfileErrors(t *testing.T) {
	wrap := func(body string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n" + body + "\n\t}\n}\n"
	}
	cases := []struct{ name, input, want string }{
		{"level the chain lacks", wrap("admin_console {\nacr 2\n}"), `admin_console: acr "2" is not a level of the chain (levels: 1)`},
		{"level of no module", wrap("chain {\npassword {\nlevels 1\n}\n}\nadmin_console {\n\nacr gold\n}"), `acr "gold" is not a level of the chain (levels: 1): use one of them, or give the chain a module of that level, at Caddyfile:11`},
		{"bad max_age", wrap("admin_console {\nmax_age soon\n}"), `max_age "soon" is not a positive duration`},
		{"negative max_age", wrap("admin_console {\nmax_age -5m\n}"), `max_age "-5m" is not a positive duration`},
		{"bad audit_events", wrap("admin_console {\naudit_events 0\n}"), `audit_events "0" is not a number from 1 to 1000000`},
		{"bad group", wrap("admin_console {\ngroup \"a b\"\n}"), `bad group name "a b"`},
		{"unknown setting", wrap("admin_console {\nrole admin\n}"), `unknown setting "role"`},
		{"no value", wrap("admin_console {\ngroup\n}"), "wrong argument count"},
		{"two values", wrap("admin_console {\ngroup a b\n}"), "wrong argument count"},
		{"bad argument", wrap("admin_console on"), "admin_console takes a block, or off"},
		{"twice", wrap("admin_console off\nadmin_console off"), "admin_console is configured twice"},
	}
	checkAdaptErrors(t, cases)
}

// FuzzConsoleCaddyfile: any admin_console block parses or is refused
// with an error, never a panic; what parses has sane values.
func FuzzConsoleCaddyfile(f *testing.F) {
	for _, s := range []string{"admin_console off", "admin_console {\ngroup g\nacr 2\nmax_age 1m\naudit_events 9\n}", "admin_console {\n}", "admin_console {\nmax_age\n}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, ok := fuzzDispenser(input)
		if !ok {
			return
		}
		d.Next()
		var a App
		if err := a.parseConsole(d); err != nil {
			return
		}
		cc := a.AdminConsole
		if cc == nil || cc.MaxAge < 0 || cc.AuditEvents < 0 || strings.ContainsAny(cc.Group, ", \t") {
			t.Fatalf("parsed %q into %+v", input, cc)
		}
	})
}

// fuzzDispenser tokenizes a fuzzer's input as Caddy would, refusing what
// Caddy's lexer refuses (caddyfile.NewTestDispenser exits the process on
// such input instead).
func fuzzDispenser(input string) (*caddyfile.Dispenser, bool) {
	tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
	if err != nil {
		return nil, false
	}
	return caddyfile.NewDispenser(tokens), true
}
