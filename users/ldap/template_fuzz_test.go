package ldap

import (
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"
)

// nodes counts a compiled filter's components and the kinds of them: a
// value put in a placeholder must not change them.
func nodes(p *ber.Packet) []uint64 {
	out := []uint64{uint64(p.Tag)<<8 | uint64(len(p.Children))}
	if p.Tag == goldap.FilterEqualityMatch || p.Tag == goldap.FilterSubstrings ||
		p.Tag == goldap.FilterGreaterOrEqual || p.Tag == goldap.FilterLessOrEqual || p.Tag == goldap.FilterApproxMatch {
		return out // an assertion: its value is the login's
	}
	for _, c := range p.Children {
		out = append(out, nodes(c)...)
	}
	return out
}

func FuzzFilterTemplate(f *testing.F) {
	f.Add(DefaultUserFilter, "*)(uid=*")
	f.Add("(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(sAMAccountName={login}))", "admin)(|(cn=*")
	f.Add("(|(member={login})(memberUid={login}))", `\2a`)
	f.Add("(uid={login}", "x")
	f.Add("({login}=x)", "uid")
	f.Add("(uid={log{in})", "x")
	f.Fuzz(func(t *testing.T, tmpl, login string) {
		tp, err := parseTemplate(tmpl, "login")
		if err != nil {
			return
		}
		want, err := goldap.CompileFilter(tp.expand(map[string]string{"login": "x"}))
		if err != nil {
			t.Fatalf("a parsed template that does not compile: %q", tmpl)
		}
		got, err := goldap.CompileFilter(tp.expand(map[string]string{"login": login}))
		if err != nil {
			t.Fatalf("login %q breaks template %q: %v", login, tmpl, err)
		}
		a, b := nodes(want), nodes(got)
		if len(a) != len(b) {
			t.Fatalf("login %q changes the filter %q: %v vs %v", login, tmpl, a, b)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("login %q changes the filter %q: %v vs %v", login, tmpl, a, b)
			}
		}
	})
}
