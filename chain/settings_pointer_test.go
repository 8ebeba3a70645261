package chain

import (
	"reflect"
	"testing"
)

// A pointer setting (a default told apart from false) is written in a
// Caddyfile as its element, and left out it stays nil.
func TestPointerSettings(t *testing.T) {
	type s struct {
		Open *bool `json:"open,omitempty"`
		N    *int  `json:"n,omitempty"`
	}
	typ := reflect.TypeFor[s]()
	for _, c := range []struct {
		field string
		args  []string
		want  string
	}{{"open", nil, "true"}, {"open", []string{"false"}, "false"}, {"n", []string{"7"}, "7"}} {
		got, err := textToJSON(typ.Field(map[string]int{"open": 0, "n": 1}[c.field]).Type, c.args)
		if err != nil || string(got) != c.want {
			t.Errorf("%s %v: %s %v", c.field, c.args, got, err)
		}
	}
	v, err := decodeSettings("k", typ, []byte(`{"open": "false"}`))
	if err != nil || v.(*s).Open == nil || *v.(*s).Open || v.(*s).N != nil {
		t.Fatalf("decoded %+v %v", v, err)
	}
	v, err = decodeSettings("k", typ, nil)
	if err != nil || v.(*s).Open != nil {
		t.Fatalf("unset: %+v %v", v, err)
	}
}
