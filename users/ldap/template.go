package ldap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// template is a search filter with placeholders ({login}, {dn}) that
// are replaced by values escaped for a filter (RFC 4515 §3), so that no
// value can add or change a filter component.
type template struct {
	// parts alternate literal text and placeholder names: even indexes
	// are literals, odd ones names.
	parts []string
}

const maxTemplate = 4096

// parseTemplate parses a filter template whose placeholders are among
// names, the first of which it must use. The filter it makes must
// compile.
func parseTemplate(s string, names ...string) (template, error) {
	if s == "" {
		return template{}, errors.New("empty filter")
	}
	if len(s) > maxTemplate {
		return template{}, fmt.Errorf("filter longer than %d bytes", maxTemplate)
	}
	var t template
	rest := s
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return template{}, fmt.Errorf("%q: a { without }", s)
		}
		name := rest[i+1 : i+j]
		if !slices.Contains(names, name) {
			return template{}, fmt.Errorf("%q: unknown placeholder {%s} (known: {%s})", s, name, strings.Join(names, "}, {"))
		}
		// Escaping keeps a value a value; a placeholder elsewhere (an
		// attribute name, an operator) could change the filter.
		before := s[:len(s)-len(rest)+i]
		if eq := strings.LastIndexByte(before, '='); eq <= strings.LastIndexByte(before, '(') || eq <= strings.LastIndexByte(before, ')') {
			return template{}, fmt.Errorf("%q: {%s} may only stand in a value, after the =", s, name)
		}
		t.parts = append(t.parts, rest[:i], name)
		rest = rest[i+j+1:]
	}
	if len(names) > 0 && !t.uses(names[0]) {
		return template{}, fmt.Errorf("%q does not use {%s}", s, names[0])
	}
	sample := map[string]string{}
	for _, n := range names {
		sample[n] = "x"
	}
	if _, err := goldap.CompileFilter(t.expand(sample)); err != nil {
		return template{}, fmt.Errorf("%q is not a valid LDAP filter: %v", s, err)
	}
	return t, nil
}

func (t template) uses(name string) bool {
	for i := 1; i < len(t.parts); i += 2 {
		if t.parts[i] == name {
			return true
		}
	}
	return false
}

// expand fills in the placeholders with vars, escaped.
func (t template) expand(vars map[string]string) string {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
		} else {
			b.WriteString(goldap.EscapeFilter(vars[p]))
		}
	}
	return b.String()
}

// byteFilter is (attr=value) with every byte of value escaped: it
// matches binary ids (objectGUID) and text ones (entryUUID) alike.
func byteFilter(attr string, value []byte) string {
	var b strings.Builder
	b.WriteString("(" + attr + "=")
	for _, c := range value {
		fmt.Fprintf(&b, `\%02x`, c)
	}
	b.WriteString(")")
	return b.String()
}
