package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestQuickStartExample runs the README's first command's config,
// Caddyfile.example (on free ports), and signs in as the demo user at the
// legacy app behind the gate.
func TestQuickStartExample(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	ports := map[string]int{}
	for _, p := range []string{"9000", "9001", "9002", "9101"} {
		ports[p] = freePort(t)
		cfg = strings.ReplaceAll(cfg, ":"+p, fmt.Sprintf(":%d", ports[p]))
	}
	cfg = strings.Replace(cfg, "{\n\tdefault_bind 127.0.0.1", "{\n\tadmin {admin}\n\tdefault_bind 127.0.0.1", 1)
	c := startCaddy(t, cfg)
	b := newBrowser(t)
	resp, page := b.get(fmt.Sprintf("http://app.localhost:%d/", ports["9002"]))
	if !strings.Contains(page, `name="password"`) {
		t.Fatalf("no login page: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.submitLogin(resp.Request.URL.String(), page, "demo", "demo-password-change-me")
	if resp.StatusCode != 200 || !strings.Contains(page, "Remote-User:   demo") {
		t.Fatalf("demo sign-in: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(c.log.String(), "GATEHOUSE DEMO USER IS ACTIVE") {
		t.Fatal("no warning about the demo user")
	}
}
