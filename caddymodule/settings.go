package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// replaceInSettings replaces the known placeholders ({env.*}) in the
// string values of a chain module's settings, as the app does for client
// secrets, so a module's secret (a remote provider's client secret) stays
// out of the configuration. Everything else is kept as it is; the chain
// checks the settings themselves.
func replaceInSettings(raw json.RawMessage, repl *caddy.Replacer) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("settings are no JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("settings hold more than one JSON value")
	}
	return json.Marshal(replaceIn(v, repl))
}

func replaceIn(v any, repl *caddy.Replacer) any {
	switch x := v.(type) {
	case string:
		return repl.ReplaceKnown(x, "")
	case map[string]any:
		for k, e := range x {
			x[k] = replaceIn(e, repl)
		}
	case []any:
		for i, e := range x {
			x[i] = replaceIn(e, repl)
		}
	}
	return v
}
