package mail

import (
	"strings"
	"testing"
)

// The note to an address's owner names their account, works with and
// without a link, and never prints an empty value.
func TestAccountExistsTemplate(t *testing.T) {
	tpl, err := loadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	subject, text, html, err := tpl.render(AccountExists, map[string]any{"site": "Example", "username": "alice", "name": "Alice"})
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Someone signed up at Example with your address" {
		t.Errorf("subject %q", subject)
	}
	for _, part := range []string{text, html} {
		if !strings.Contains(part, "alice") || !strings.Contains(part, "If it was not you, ignore this message.") ||
			strings.Contains(part, "<no value>") {
			t.Errorf("part:\n%s", part)
		}
	}
	if strings.Contains(html, "<a ") || strings.Contains(text, "here:") {
		t.Errorf("a link without one:\n%s\n%s", text, html)
	}
	_, text, html, _ = tpl.render(AccountExists, map[string]any{"site": "Example", "link": "https://auth.example.com/account"})
	if !strings.Contains(text, "sign in with your account here: https://auth.example.com/account") || !strings.Contains(html, `href="https://auth.example.com/account"`) ||
		strings.Contains(text, `account ""`) {
		t.Errorf("with a link, without a username:\n%s\n%s", text, html)
	}
}
