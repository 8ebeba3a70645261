package provider_test

import (
	"testing"

	"github.com/gatehouse-idp/gatehouse/provider"
)

// Redirect URIs a browser would run or show itself are refused for every
// client (configured, added by an admin, registered); native apps' own
// schemes stay allowed.
func TestRedirectURISchemes(t *testing.T) {
	for _, u := range []string{"javascript:alert(document.domain)//", "JavaScript:alert(1)", "data:text/html,<script>x</script>",
		"vbscript:msgbox", "file:///etc/passwd", "blob:https://a.example/x", "about:blank", "view-source:https://a.example/"} {
		if err := provider.ValidateRedirectURI(u); err == nil {
			t.Errorf("%s accepted", u)
		}
		c := provider.Client{ID: "x", Secret: "s", RedirectURIs: []string{u}}
		if err := c.Validate(); err == nil {
			t.Errorf("client with %s accepted", u)
		}
	}
	for _, u := range []string{"https://app.example/cb", "com.example.app:/oauth2redirect", "http://127.0.0.1:8765/cb"} {
		if err := provider.ValidateRedirectURI(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
}
