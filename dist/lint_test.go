package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dockerfileLint runs dockerfile-utils (the Dockerfile linter of the
// VS Code Docker extension, pinned in lint/package.json; .ci/run
// installs it) on src. It exits non-zero on any error or warning.
func dockerfileLint(t *testing.T, src string) (string, error) {
	t.Helper()
	bin, _ := filepath.Abs("lint/node_modules/.bin/dockerfile-utils")
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("dockerfile-utils is not installed: run (cd dist/lint && npm ci), as .ci/run does")
	}
	file := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "lint", file).CombinedOutput()
	return string(out), err
}

func TestDockerfileLint(t *testing.T) {
	if out, err := dockerfileLint(t, readDockerfile(t)); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("dockerfile-utils lint dist/Dockerfile: %v\n%s", err, out)
	}
	// The linter is really looking: a broken instruction fails.
	broken := strings.Replace(readDockerfile(t), "USER 65532:65532", "USER", 1)
	if out, err := dockerfileLint(t, broken); err == nil || !strings.Contains(out, "no arguments") {
		t.Fatalf("dockerfile-utils let an empty USER through: %v\n%s", err, out)
	}
}
