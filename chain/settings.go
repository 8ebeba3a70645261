package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a setting's length of time. In JSON it is a string such
// as "15m", "36h" or "30d" (a number is nanoseconds); in a Caddyfile the
// same words.
type Duration time.Duration

// ParseDuration reads a duration as Go does, plus whole days ("30d").
func ParseDuration(s string) (Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && !strings.ContainsAny(n, "hmsuµn.") {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 15m, 36h or 30d)", s)
	}
	return Duration(d), nil
}

// MarshalJSON writes the duration as Go spells it ("15m0s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("a duration is a string like \"15m\" or a number of nanoseconds, not %s", b)
	}
	*d = Duration(n)
	return nil
}

var durationType = reflect.TypeFor[Duration]()

type settingField struct {
	index int
	typ   reflect.Type
}

// settingFields maps a settings struct's setting names (json tags) to
// its fields. Every exported field must have a json name.
func settingFields(t reflect.Type) (map[string]settingField, error) {
	out := map[string]settingField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("settings field %s has no json name", f.Name)
		}
		out[name] = settingField{index: i, typ: f.Type}
	}
	return out, nil
}

func unknownSetting(k, name string, fields map[string]settingField) error {
	known := slices.Sorted(maps.Keys(fields))
	if len(known) == 0 {
		return fmt.Errorf("kind %s has no setting %q (it has none)", k, name)
	}
	return fmt.Errorf("kind %s has no setting %q (known: %s)", k, name, strings.Join(known, ", "))
}

// maxSettings bounds what a settings object may hold.
const maxSettings = 64 << 10

// decodeSettings decodes raw (a JSON object, or nothing) into a new
// value of the struct type t, strictly, and validates it. A JSON string
// given for a setting that is not a string is read as a Caddyfile value
// would be ("true", "10m"): configurations from before settings were
// typed held only strings.
func decodeSettings(k string, t reflect.Type, raw json.RawMessage) (any, error) {
	v := reflect.New(t)
	if len(raw) > maxSettings {
		return nil, fmt.Errorf("settings of kind %s are over %d bytes", k, maxSettings)
	}
	fields, err := settingFields(t)
	if err != nil {
		return nil, err
	}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil || obj == nil {
			return nil, errors.New("settings must be a JSON object of setting names and values")
		}
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			f, ok := fields[name]
			if !ok {
				return nil, unknownSetting(k, name, fields)
			}
			val := obj[name]
			var s string
			if fromText(f.typ) && json.Unmarshal(val, &s) == nil {
				if val, err = textToJSON(f.typ, []string{s}); err != nil {
					return nil, fmt.Errorf("setting %s: %w", name, err)
				}
			}
			dec := json.NewDecoder(bytes.NewReader(val))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v.Elem().Field(f.index).Addr().Interface()); err != nil {
				return nil, fmt.Errorf("setting %s: %v", name, err)
			}
		}
	}
	if val, ok := v.Interface().(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return nil, err
		}
	}
	return v.Interface(), nil
}

// fromText reports whether a JSON string given for a setting of type t
// is read as Caddyfile words (booleans, numbers, lists).
func fromText(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		return fromText(t.Elem())
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return t != durationType
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// textToJSON turns a setting's Caddyfile words into its JSON value. A
// pointer field (*bool: a setting whose default is true, told apart
// from one set to false) is written as its element.
func textToJSON(t reflect.Type, args []string) (json.RawMessage, error) {
	if t.Kind() == reflect.Pointer && t.Elem().Kind() != reflect.Pointer {
		return textToJSON(t.Elem(), args)
	}
	one := func() (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("takes one value, not %d", len(args))
		}
		return args[0], nil
	}
	if t == durationType {
		s, err := one()
		if err != nil {
			return nil, err
		}
		if _, err := ParseDuration(s); err != nil {
			return nil, err
		}
		return json.Marshal(s)
	}
	switch t.Kind() {
	case reflect.String:
		s, err := one()
		if err != nil {
			return nil, err
		}
		return json.Marshal(s)
	case reflect.Bool:
		if len(args) == 0 {
			return json.RawMessage("true"), nil
		}
		s, err := one()
		if err != nil {
			return nil, err
		}
		b, perr := strconv.ParseBool(s)
		if perr != nil {
			return nil, fmt.Errorf("is true or false, not %q", s)
		}
		return json.Marshal(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s, err := one()
		if err != nil {
			return nil, err
		}
		n, perr := strconv.ParseInt(s, 10, t.Bits())
		if perr != nil {
			return nil, fmt.Errorf("is a whole number, not %q", s)
		}
		return json.Marshal(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s, err := one()
		if err != nil {
			return nil, err
		}
		n, perr := strconv.ParseUint(s, 10, t.Bits())
		if perr != nil {
			return nil, fmt.Errorf("is a whole number not below zero, not %q", s)
		}
		return json.Marshal(n)
	case reflect.Float32, reflect.Float64:
		s, err := one()
		if err != nil {
			return nil, err
		}
		f, perr := strconv.ParseFloat(s, t.Bits())
		if perr != nil || f != f || f > 1e300 || f < -1e300 {
			return nil, fmt.Errorf("is a number, not %q", s)
		}
		return json.Marshal(f)
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			break
		}
		if len(args) == 0 {
			return nil, errors.New("needs at least one value")
		}
		return json.Marshal(args)
	}
	return nil, fmt.Errorf("of type %s cannot be written in a Caddyfile; use the JSON configuration", t)
}
