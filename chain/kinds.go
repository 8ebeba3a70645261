package chain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
)

// kind is a registered module kind: its settings struct and how to build
// an instance from decoded settings.
type kind struct {
	settings reflect.Type // a struct type
	build    func(d Deps, settings any) (Module, error)
}

var kinds = map[string]kind{}

// Register makes a module kind available to chain configurations. S is
// the kind's settings struct: each field is one setting, named by its
// json tag, documented by its doc comment. A configuration's settings
// are decoded strictly into S (an unknown setting is an error); when *S
// has a method Validate() error, it is called after decoding, and also
// when `caddy adapt` reads a Caddyfile. build makes one instance.
//
// Call it from the kind's package init; a kind's name may be registered
// once.
func Register[S any](name string, build func(d Deps, s S) (Module, error)) {
	if _, dup := kinds[name]; dup {
		panic("chain: module kind registered twice: " + name)
	}
	t := reflect.TypeFor[S]()
	if t.Kind() != reflect.Struct {
		panic("chain: settings of kind " + name + " must be a struct, not " + t.String())
	}
	if _, err := settingFields(t); err != nil {
		panic("chain: kind " + name + ": " + err.Error())
	}
	kinds[name] = kind{settings: t, build: func(d Deps, s any) (Module, error) { return build(d, *s.(*S)) }}
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// KnownKind reports whether kind is registered.
func KnownKind(k string) bool {
	_, ok := kinds[k]
	return ok
}

func lookupKind(k string) (kind, error) {
	info, ok := kinds[k]
	if !ok {
		return kind{}, fmt.Errorf("unknown kind %q (known: %v)", k, Kinds())
	}
	return info, nil
}

// SettingValue turns one Caddyfile setting line of a module of kind k —
// `<name> <args>...` — into the JSON value of that setting, checked
// against the kind's settings struct: strings take one value, booleans
// none (true) or one, numbers and durations one, lists one or more.
func SettingValue(k, name string, args []string) (json.RawMessage, error) {
	info, err := lookupKind(k)
	if err != nil {
		return nil, err
	}
	fields, _ := settingFields(info.settings)
	f, ok := fields[name]
	if !ok {
		return nil, unknownSetting(k, name, fields)
	}
	return textToJSON(f.typ, args)
}

// CheckSettings decodes raw as the settings of kind k, strictly, and
// validates them: what building the chain would refuse, found when a
// configuration is adapted.
func CheckSettings(k string, raw json.RawMessage) error {
	info, err := lookupKind(k)
	if err != nil {
		return err
	}
	_, err = decodeSettings(k, info.settings, raw)
	return err
}
