package chain

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// every is a settings struct with one field of every type a Caddyfile
// can write, and one it cannot.
type every struct {
	Name   string   `json:"name,omitempty"`
	On     bool     `json:"on,omitempty"`
	N      int      `json:"n,omitempty"`
	Small  int8     `json:"small,omitempty"`
	U      uint16   `json:"u,omitempty"`
	F      float64  `json:"f,omitempty"`
	TTL    Duration `json:"ttl,omitempty"`
	List   []string `json:"list,omitempty"`
	Nested struct {
		A string `json:"a"`
	} `json:"nested,omitzero"`
	Skip   string `json:"-"`
	hidden string
}

func (e *every) Validate() error {
	if e.Name == "invalid" {
		return errors.New("name may not be invalid")
	}
	return nil
}

var everyType = reflect.TypeFor[every]()

func TestTextToJSON(t *testing.T) {
	fields, err := settingFields(everyType)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["Skip"]; ok || len(fields) != 9 {
		t.Fatalf("fields %v", fields)
	}
	cases := []struct {
		field string
		args  []string
		want  string // JSON, or "!" + part of the error
	}{
		{"name", []string{"Acme"}, `"Acme"`},
		{"name", []string{`a "quoted" one`}, `"a \"quoted\" one"`},
		{"name", nil, "!takes one value, not 0"},
		{"name", []string{"a", "b"}, "!takes one value, not 2"},
		{"on", nil, "true"},
		{"on", []string{"false"}, "false"},
		{"on", []string{"yes"}, `!true or false, not "yes"`},
		{"on", []string{"true", "false"}, "!takes one value"},
		{"n", []string{"-42"}, "-42"},
		{"n", []string{"4.2"}, "!whole number"},
		{"small", []string{"300"}, "!whole number"},
		{"u", []string{"65535"}, "65535"},
		{"u", []string{"-1"}, "!not below zero"},
		{"f", []string{"0.5"}, "0.5"},
		{"f", []string{"NaN"}, "!is a number"},
		{"f", []string{"Inf"}, "!is a number"},
		{"ttl", []string{"30d"}, `"30d"`},
		{"ttl", []string{"15m"}, `"15m"`},
		{"ttl", []string{"soon"}, "!not a duration"},
		{"ttl", []string{"1.5d"}, "!not a duration"},
		{"list", []string{"a", "b"}, `["a","b"]`},
		{"list", nil, "!at least one value"},
		{"nested", []string{"x"}, "!cannot be written in a Caddyfile"},
	}
	for _, c := range cases {
		got, err := textToJSON(fields[c.field].typ, c.args)
		if want, ok := strings.CutPrefix(c.want, "!"); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %q: %s, %v; want error %q", c.field, c.args, got, err, want)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s %q: %s, %v; want %s", c.field, c.args, got, err, c.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "1d": 24 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || time.Duration(got) != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "-1d", "99999999d", "1.5d", "5md", "x"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("%q accepted as %v", in, got)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`900000000000`), &d); err != nil || time.Duration(d) != 15*time.Minute {
		t.Errorf("nanoseconds: %v %v", d, err)
	}
	if b, _ := json.Marshal(Duration(15 * time.Minute)); string(b) != `"15m0s"` {
		t.Errorf("marshal %s", b)
	}
	if err := json.Unmarshal([]byte(`true`), &d); err == nil {
		t.Error("a boolean read as a duration")
	}
}

func TestDecodeSettings(t *testing.T) {
	ok := func(raw string) *every {
		t.Helper()
		v, err := decodeSettings("test", everyType, json.RawMessage(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return v.(*every)
	}
	if e := ok(``); !reflect.DeepEqual(*e, every{}) {
		t.Fatalf("empty: %+v", e)
	}
	ok(`null`)
	e := ok(`{"name": "x", "on": true, "n": 3, "ttl": "30d", "list": ["a"], "nested": {"a": "b"}}`)
	if e.Name != "x" || !e.On || e.N != 3 || time.Duration(e.TTL) != 720*time.Hour || e.List[0] != "a" || e.Nested.A != "b" {
		t.Fatalf("decoded %+v", e)
	}
	// Strings for typed settings: configurations from before typing.
	e = ok(`{"on": "true", "n": "7", "f": "0.25", "list": "one"}`)
	if !e.On || e.N != 7 || e.F != 0.25 || len(e.List) != 1 {
		t.Fatalf("from strings %+v", e)
	}
	bad := map[string]string{
		`{"colour": "red"}`:           `kind test has no setting "colour" (known: f, list, n, name, nested, on, small, ttl, u)`,
		`{"Skip": "x"}`:               `no setting "Skip"`,
		`{"hidden": "x"}`:             `no setting "hidden"`,
		`{"on": "perhaps"}`:           `setting on: is true or false`,
		`{"n": 1.5}`:                  "setting n:",
		`{"name": 5}`:                 "setting name:",
		`{"nested": {"b": 1}}`:        `setting nested: json: unknown field "b"`,
		`{"nested": "x"}`:             "setting nested:",
		`{"ttl": "soon"}`:             "not a duration",
		`["name"]`:                    "JSON object",
		`"name"`:                      "JSON object",
		`{"name": "invalid"}`:         "name may not be invalid",
		`{"name": "a"} {"name": "b"}`: "JSON object",
	}
	for raw, want := range bad {
		if _, err := decodeSettings("test", everyType, json.RawMessage(raw)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
	if _, err := decodeSettings("test", everyType, json.RawMessage(`{"name": "`+strings.Repeat("x", maxSettings)+`"}`)); err == nil {
		t.Error("oversized settings accepted")
	}
}

func TestRegisterRefusesBadSettings(t *testing.T) {
	build := func(Deps, struct{}) (Module, error) { return nil, nil }
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	mustPanic("duplicate", func() {
		Register("test-dup", build)
		Register("test-dup", build)
	})
	mustPanic("not a struct", func() { Register("test-int", func(Deps, int) (Module, error) { return nil, nil }) })
	type untagged struct{ Colour string }
	mustPanic("untagged field", func() { Register("test-untagged", func(Deps, untagged) (Module, error) { return nil, nil }) })
	if _, err := SettingValue("nope", "x", nil); err == nil || !strings.Contains(err.Error(), `unknown kind "nope"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if err := CheckSettings("nope", nil); err == nil {
		t.Error("settings of an unknown kind checked")
	}
}

// FuzzDecodeSettings: no input panics; what decodes encodes and decodes
// to the same.
func FuzzDecodeSettings(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"name":"x","on":"true","ttl":"30d","list":["a"]}`, `{"nested":{"a":"b"}}`,
		`{"n":"-3","u":"70000","f":"1e400"}`, `[1]`, `{"ttl":12}`, `{"on":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := decodeSettings("fuzz", everyType, raw)
		if err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", v, err)
		}
		again, err := decodeSettings("fuzz", everyType, b)
		if err != nil || !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip %s: %+v vs %+v (%v)", b, v, again, err)
		}
	})
}

// FuzzSettingValue: Caddyfile words become JSON that decodes into the
// setting's type, or an error; never a panic.
func FuzzSettingValue(f *testing.F) {
	for _, s := range []string{"name Acme", "on", "on false", "n -1", "u 65536", "f 1e9", "ttl 30d", "list a b c", "nested x", "ttl"} {
		f.Add(s)
	}
	fields, _ := settingFields(everyType)
	f.Fuzz(func(t *testing.T, line string) {
		words := strings.Fields(line)
		if len(words) == 0 {
			return
		}
		fd, ok := fields[words[0]]
		if !ok {
			return
		}
		raw, err := textToJSON(fd.typ, words[1:])
		if err != nil {
			return
		}
		v := reflect.New(fd.typ)
		if err := json.Unmarshal(raw, v.Interface()); err != nil {
			t.Fatalf("%q gave %s, which does not decode: %v", line, raw, err)
		}
		if _, err := decodeSettings("fuzz", everyType, json.RawMessage(`{"`+words[0]+`":`+string(raw)+`}`)); err != nil {
			t.Fatalf("%q gave %s, refused by decoding: %v", line, raw, err)
		}
	})
}
