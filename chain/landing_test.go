package chain

import (
	"context"
	"encoding/json"
	"testing"
)

// Stand-ins for the capabilities landing looks at.
type (
	formMod  struct{ FormModule }
	offerMod struct{ FormModule }
	fillMod  struct {
		ScriptedModule
		token string
	}
)

func (offerMod) Offer() string                                   { return "Forgot password?" }
func (m fillMod) Autofill() string                               { return m.token }
func (fillMod) Script() Script                                   { return Script{Static: "webauthn.js"} }
func (fillMod) Prompt(context.Context, *Attempt) (Prompt, error) { return Prompt{}, nil }
func (fillMod) Begin(context.Context, *Attempt, json.RawMessage) (any, []byte, error) {
	return nil, nil, nil
}

// The page a step lands on: a form beside offers and an autofilling
// module is the form's (the autofill runs there); an autofilling module
// with only offers is its own; two forms, or two autofilling modules
// and no form, are a choice. An instance whose Autofill is "" counts as
// any module.
func TestLanding(t *testing.T) {
	form, form2 := &node{ModuleConfig: ModuleConfig{Name: "form"}, mod: formMod{}}, &node{ModuleConfig: ModuleConfig{Name: "form2"}, mod: formMod{}}
	offer := &node{ModuleConfig: ModuleConfig{Name: "offer"}, mod: offerMod{}}
	fill, fill2 := &node{ModuleConfig: ModuleConfig{Name: "fill"}, mod: fillMod{token: "webauthn"}}, &node{ModuleConfig: ModuleConfig{Name: "fill2"}, mod: fillMod{token: "webauthn"}}
	plain := &node{ModuleConfig: ModuleConfig{Name: "plain"}, mod: fillMod{}}
	for _, c := range []struct {
		offered []*node
		want    *node
	}{
		{[]*node{fill}, fill},
		{[]*node{form, fill}, form},
		{[]*node{fill, offer, form}, form},
		{[]*node{fill, offer}, fill},
		{[]*node{fill, fill2, offer}, nil},
		{[]*node{fill, fill2, form}, form},
		{[]*node{form, form2, fill}, nil},
		{[]*node{form, plain}, nil},
		{[]*node{plain, offer}, plain},
	} {
		var names []string
		for _, n := range c.offered {
			names = append(names, n.Name)
		}
		if got := landing(c.offered); got != c.want {
			t.Errorf("%v: lands on %v, want %v", names, got, c.want)
		}
	}
}
