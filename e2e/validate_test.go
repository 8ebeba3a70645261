package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caddy validate works while a Caddy runs on the same data directory
// (its embedded store is locked by that Caddy), answers at once, and
// writes nothing to a store: validated alone, no store file appears.
func TestValidateWhileRunning(t *testing.T) {
	s := newIDP(t, "")
	validate := func(env []string, config string) (string, time.Duration, error) {
		f := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "validate", "--config", f, "--adapter", "caddyfile")
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		return string(out), time.Since(start), err
	}
	good := strings.Replace(s.caddyfile(""), "admin {admin}", "admin off", 1)
	out, took, err := validate(s.caddy.env(), good)
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("validate while running: %v (%v)\n%s", err, took, out)
	}
	t.Logf("validated in %v while running", took)
	bad := strings.Replace(good, "redirect_uri ", "redirect_uri /relative", 1)
	if out, _, err := validate(s.caddy.env(), bad); err == nil || !strings.Contains(out, "redirect") {
		t.Fatalf("a bad configuration validated:\n%s", out)
	}
	// The running Caddy is untouched: it still signs in.
	s.addUser(t, "alice", "correct horse battery")

	// Alone, on a fresh data directory: nothing is written.
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	if out, _, err := validate(env, good); err != nil {
		t.Fatalf("validate alone: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "data", "caddy", "gatehouse", "gatehouse.db")); !os.IsNotExist(err) {
		t.Fatalf("validate created the store: %v", err)
	}
}
