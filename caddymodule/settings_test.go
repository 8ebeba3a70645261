package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestReplaceInSettings(t *testing.T) {
	t.Setenv("GH_TEST_SECRET", "s3cret")
	repl := caddy.NewReplacer()
	out, err := replaceInSettings(json.RawMessage(`{"client_secret": "{env.GH_TEST_SECRET}", "n": 12345678901234567890, "list": ["{env.GH_TEST_SECRET}", true], "keep": "{unknown}"}`), repl)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"client_secret":"s3cret","keep":"{unknown}","list":["s3cret",true],"n":12345678901234567890}`
	if string(out) != want {
		t.Fatalf("got %s", out)
	}
	for _, bad := range []string{`{`, `{} {}`, `nope`} {
		if _, err := replaceInSettings(json.RawMessage(bad), repl); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzReplaceInSettings: no panic; what it returns is JSON, and settings
// without placeholders come back meaning the same.
func FuzzReplaceInSettings(f *testing.F) {
	for _, s := range []string{`{"a":"{env.HOME}"}`, `{"n":1e400}`, `[1,{"x":[null]}]`, `"str"`, ``, `{"a":"\ud800"}`} {
		f.Add(s)
	}
	repl := caddy.NewReplacer()
	f.Fuzz(func(t *testing.T, in string) {
		out, err := replaceInSettings(json.RawMessage(in), repl)
		if err != nil || len(strings.TrimSpace(in)) == 0 {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q gave invalid JSON %q", in, out)
		}
		var a, b any
		if json.Unmarshal([]byte(in), &a) != nil || json.Unmarshal(out, &b) != nil || bracedString(a) {
			return
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("%q changed to %q", in, out)
		}
	})
}

// bracedString reports whether v holds a string with a brace (which may
// be a placeholder).
func bracedString(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsAny(x, "{}")
	case map[string]any:
		for _, e := range x {
			if bracedString(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if bracedString(e) {
				return true
			}
		}
	}
	return false
}
