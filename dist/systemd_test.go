package dist

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unitSettings reads key=value lines of a unit file (a key may repeat).
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a setting: %q", path, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// systemdAnalyze runs systemd-analyze on a copy of the unit whose
// binary is the one the build stage makes (verify checks that ExecStart
// exists and is executable).
func systemdAnalyze(t *testing.T, args ...string) (string, error) {
	return systemdAnalyzeEdited(t, func(s string) string { return s }, args...)
}

// systemdAnalyzeEdited is systemdAnalyze on the unit changed by edit.
func systemdAnalyzeEdited(t *testing.T, edit func(string) string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is not installed (run .ci/run, which installs Debian's systemd)")
	}
	src, err := os.ReadFile("gatehouse.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(scratch, "unit")
	os.MkdirAll(dir, 0o755)
	unit := filepath.Join(dir, "gatehouse.service")
	if err := os.WriteFile(unit, []byte(edit(strings.ReplaceAll(string(src), "/usr/local/bin/caddy", buildStage(t)))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", append(args, unit)...).CombinedOutput()
	return string(out), err
}

// verify prints a line naming the unit for anything it ignores (an
// unknown key, a bad value) and still exits 0: any such line fails.
func TestSystemdUnitVerifies(t *testing.T) {
	out, err := systemdAnalyze(t, "verify")
	if err != nil || strings.Contains(out, "gatehouse.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, bad := range [][2]string{{"ProtectSystem=strict", "ProtectSystem=strickt"}, {"Type=notify", "Tipe=notify"}} {
		out, err := systemdAnalyzeEdited(t, func(s string) string { return strings.Replace(s, bad[0], bad[1], 1) }, "verify")
		if err == nil && !strings.Contains(out, "gatehouse.service") {
			t.Errorf("verify does not catch %s", bad[1])
		}
	}
}

// The exposure score of systemd-analyze security stays in its "OK"
// band, and the settings the score cannot see are there.
func TestSystemdUnitHardening(t *testing.T) {
	out, err := systemdAnalyze(t, "security", "--offline=yes", "--no-pager")
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for gatehouse.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > 2.0 {
		t.Fatalf("exposure %v, want at most 2.0:\n%s", score, out)
	}
	s := unitSettings(t, "gatehouse.service")
	want := map[string]string{
		"Type":                  "notify", // Caddy tells systemd when it is ready
		"DynamicUser":           "yes",
		"StateDirectory":        "gatehouse",
		"StateDirectoryMode":    "0700",
		"ProtectSystem":         "strict",
		"NoNewPrivileges":       "yes",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"UMask":                 "0077",
	}
	for k, v := range want {
		if got := s[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%v, want %s", k, got, v)
		}
	}
	// The data directory is the state directory: certificates and the
	// embedded store survive restarts and stay private.
	if env := strings.Join(s["Environment"], " "); !strings.Contains(env, "XDG_DATA_HOME=/var/lib/gatehouse") {
		t.Errorf("Environment %q does not put Caddy's data in the state directory", env)
	}
	if exec := strings.Join(s["ExecStart"], ""); !strings.Contains(exec, "caddy run ") {
		t.Errorf("ExecStart %q is not caddy run", s["ExecStart"])
	}
}
