package chain_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
)

func TestConfigValidation(t *testing.T) {
	d := newDeps(t)
	pw := mod("Password", "password", []string{"1"})
	code := func(name string, level string, after ...string) chain.ModuleConfig {
		return mod(name, "testcode", []string{level}, after...)
	}
	cases := []struct {
		name string
		mods []chain.ModuleConfig
		want []string // every one must be in the error
	}{
		{"empty", nil, []string{"no modules"}},
		{"no name", []chain.ModuleConfig{pw, {Kind: "testcode", Levels: []string{"2"}, After: []string{"Password"}}}, []string{"module 2 has no name"}},
		{"duplicate", []chain.ModuleConfig{pw, code("Code", "2", "Password"), code("Code", "3", "Password")}, []string{"duplicate", `"Code"`}},
		{"duplicate start", []chain.ModuleConfig{pw, pw}, []string{"duplicate", `"Password"`}},
		{"unknown kind", []chain.ModuleConfig{pw, mod("Texts", "sms", []string{"2"}, "Password")}, []string{`"Texts"`, "unknown kind", `"sms"`}},
		{"no levels", []chain.ModuleConfig{pw, mod("Code", "testcode", nil, "Password")}, []string{`"Code"`, "no levels"}},
		{"bad remember", []chain.ModuleConfig{{Name: "P", Kind: "password", Levels: []string{"1"}, Remember: "always"}}, []string{`"P"`, `"always"`}},
		{"bad settings", []chain.ModuleConfig{{Name: "P", Kind: "password", Levels: []string{"1"}, Settings: json.RawMessage(`{"x": "y"}`)}}, []string{`"P"`, `no setting "x"`}},
		{"settings not an object", []chain.ModuleConfig{{Name: "P", Kind: "password", Levels: []string{"1"}, Settings: json.RawMessage(`["x"]`)}}, []string{`"P"`, "JSON object"}},
		{"unknown after", []chain.ModuleConfig{pw, code("Code", "2", "Nope")}, []string{`"Code"`, `"Nope"`, "unknown"}},
		{"unknown among afters", []chain.ModuleConfig{pw, code("A", "2", "Password"), code("B", "3", "A", "Typo")}, []string{`"B"`, `"Typo"`}},
		{"cycle", []chain.ModuleConfig{pw, code("A", "2", "Password", "B"), code("B", "3", "A")}, []string{"cycle", "A", "B"}},
		{"self loop", []chain.ModuleConfig{pw, code("Loop", "2", "Password", "Loop")}, []string{"cycle", "Loop"}},
		{"longer cycle", []chain.ModuleConfig{pw, code("A", "2", "Password", "C"), code("B", "3", "A"), code("C", "4", "B")}, []string{"cycle", "A", "B", "C"}},
		{"no start", []chain.ModuleConfig{code("A", "2", "B"), code("B", "3", "A")}, []string{"no start module"}},
		// A cycle off to the side is never reached from the start.
		{"unreachable", []chain.ModuleConfig{pw, code("Island", "2", "Ghost"), code("Ghost", "3", "Island")}, []string{`"Island"`, "never reached", `"Password"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := chain.New(chain.Config{Modules: tc.mods}, chain.Options{Store: d.st, Sessions: d.sessions, Users: d.users, Logout: d.logout})
			if err == nil {
				t.Fatalf("accepted (levels %v)", e.Levels())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
	if _, err := chain.New(chain.DefaultConfig(), chain.Options{Store: d.st, Users: d.users}); err == nil {
		t.Error("New without Sessions accepted")
	}
}

func TestConfigValid(t *testing.T) {
	d := newDeps(t)
	cases := []struct {
		name   string
		mods   []chain.ModuleConfig
		levels []string
	}{
		{"default", chain.DefaultConfig().Modules, []string{"1"}},
		// Modules may come in any order; a module reached by two paths
		// (a diamond) is no cycle.
		{"diamond", []chain.ModuleConfig{
			mod("Join", "testcode", []string{"3"}, "Left", "Right"),
			mod("Left", "testcode", []string{"2"}, "Password"),
			mod("Password", "password", []string{"1"}),
			mod("Right", "testcode", []string{"2"}, "Password"),
		}, []string{"1", "2", "3"}},
		// Several start modules: a sign-in form beside another way in.
		{"two starts", []chain.ModuleConfig{
			mod("Password", "password", []string{"1"}),
			mod("Code", "testcode", []string{"2"}, "Password"),
			mod("Second", "password", []string{"1"}),
		}, []string{"1", "2"}},
		{"shared level", []chain.ModuleConfig{
			mod("Password", "password", []string{"1", "basic"}),
			mod("Code", "testcode", []string{"2", "basic"}, "Password"),
		}, []string{"1", "basic", "2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := chain.New(chain.Config{Modules: tc.mods}, chain.Options{Store: d.st, Sessions: d.sessions, Users: d.users, Logout: d.logout})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Levels(); !slices.Equal(got, tc.levels) {
				t.Fatalf("levels %v, want %v", got, tc.levels)
			}
			for _, l := range tc.levels {
				if !e.KnownLevel(l) {
					t.Errorf("level %q unknown", l)
				}
			}
			if e.KnownLevel("nope") {
				t.Error("unknown level known")
			}
		})
	}
}
