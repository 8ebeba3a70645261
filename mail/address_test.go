package mail

import (
	"bytes"
	netmail "net/mail"
	"strings"
	"testing"

	gomail "github.com/wneessen/go-mail"
)

func TestParseAddress(t *testing.T) {
	for _, ok := range []string{"alice@example.com", "a.b+tag@sub.example.co.uk", "root@localhost", "o'brien@example.ie",
		"jörg@müller.example", strings.Repeat("a", 64) + "@example.com"} {
		if got, err := ParseAddress(ok); err != nil || got != ok {
			t.Errorf("ParseAddress(%q) = %q, %v", ok, got, err)
		}
	}
	for _, bad := range []string{"", "alice", "alice@", "@example.com", "Alice <alice@example.com>", "<alice@example.com>",
		"alice@example.com (Alice)", `"alice smith"@example.com`, `"a\"b"@example.com`, "alice@[127.0.0.1]",
		"alice@example.com, bob@example.com", "alice@example.com\r\nBcc: e@evil.example", "alice@example.com\n", "al\x00ice@example.com",
		"ali\u202ece@example.com", "alice@exa\xffmple.com", strings.Repeat("a", 65) + "@example.com",
		"a@" + strings.Repeat("b", 260) + ".example", " alice@example.com", "alice@example.com "} {
		if got, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseFrom(t *testing.T) {
	for in, want := range map[string][2]string{
		"Acme <noreply@acme.example>":         {"Acme", "noreply@acme.example"},
		`"Acme, Inc." <noreply@acme.example>`: {"Acme, Inc.", "noreply@acme.example"},
		"noreply@acme.example":                {"", "noreply@acme.example"},
	} {
		a, err := ParseFrom(in)
		if err != nil || a.Name != want[0] || a.Address != want[1] {
			t.Errorf("ParseFrom(%q) = %v, %v", in, a, err)
		}
	}
	for _, bad := range []string{"", "Acme", "Acme <noreply>", "=?utf-8?q?Acme=0D=0ABcc:_e@evil.example?= <noreply@acme.example>",
		"Acme\r\n <noreply@acme.example>", "Acme <a@b.example>, Other <c@d.example>", `Acme <"x y"@acme.example>`} {
		if a, err := ParseFrom(bad); err == nil {
			t.Errorf("ParseFrom(%q) = %v, want an error", bad, a)
		}
	}
}

// FuzzParseAddress: an accepted address holds no control character, is
// read back the same by net/mail, and becomes exactly one To header
// line of the message, naming it.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "a\r\nb@c", "Alice <a@b>", `"a b"@c`, "a@[1.2.3.4]", "jörg@müller.example",
		"=?utf-8?q?a?= <b@c>", "a@b,c@d", "a@b\x00", "(c)a@b", "a@b(c)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseAddress(s)
		if err != nil {
			return
		}
		if got != s || strings.ContainsAny(got, "\r\n\x00<>,\"") || strings.Count(got, "@") < 1 || len(got) > maxAddress {
			t.Fatalf("accepted %q as %q", s, got)
		}
		a, err := netmail.ParseAddress(got)
		if err != nil || a.Address != got || a.Name != "" {
			t.Fatalf("net/mail reads %q as %v, %v", got, a, err)
		}
		if again, err := ParseAddress(got); err != nil || again != got {
			t.Fatalf("not stable: %q -> %q, %v", got, again, err)
		}
		m := gomail.NewMsg()
		if err := m.To(got); err != nil {
			t.Fatalf("go-mail refuses %q: %v", got, err)
		}
		m.SetBodyString(gomail.TypeTextPlain, "x")
		var b bytes.Buffer
		if _, err := m.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(b.String(), "\r\n\r\n")
		// Long headers are folded: a line that starts with a space or a
		// tab goes on with the one before it (RFC 5322 2.2.3).
		head = strings.NewReplacer("\r\n ", " ", "\r\n\t", " ").Replace(head)
		var to []string
		for line := range strings.SplitSeq(head, "\r\n") {
			if strings.HasPrefix(line, "To:") {
				to = append(to, line)
			}
			if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "Cc:") {
				t.Fatalf("%q added a header: %q", got, line)
			}
		}
		if len(to) != 1 || !strings.Contains(to[0], got) {
			t.Fatalf("%q gives To lines %q", got, to)
		}
	})
}
