// Package dist holds the packaging of Gatehouse (Dockerfile, systemd
// unit) and the tests that check them as far as a machine without a
// container engine or a running systemd can: see README.md.
package dist

import (
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/freeport"
)

var (
	buildOnce sync.Once
	built     string
	buildErr  error
	// scratch holds what the tests make; removed after them.
	scratch string
)

func TestMain(m *testing.M) {
	var err error
	if scratch, err = os.MkdirTemp("", "gatehouse-dist"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by the unprivileged user of TestRunsAsTheImageUser.
	os.Chmod(scratch, 0o755)
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// buildStage runs the build stage's `go build` RUN line of the
// Dockerfile, with the stage's ENV, from the repository root, /out/
// standing for a temporary directory: the binary the image would hold.
func buildStage(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		_, stages, err := parseDockerfile(readDockerfile(t))
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(scratch, "out")
		env := os.Environ()
		var run string
		for _, in := range stages[0].instrs {
			switch in.cmd {
			case "ENV":
				for _, kv := range strings.Fields(in.args) {
					env = append(env, kv)
				}
			case "RUN":
				if strings.Contains(in.args, "go build") {
					run = in.args
				}
			}
		}
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(run, "/out/", out+"/"))
		cmd.Dir, cmd.Env = "..", env
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%s: %v\n%s", run, err, b)
			return
		}
		built = filepath.Join(out, "caddy")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// The Go of the build stage is the one CI tests with, and not older
// than go.mod asks.
func TestDockerfileGoVersion(t *testing.T) {
	args, _, err := parseDockerfile(readDockerfile(t))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if ours := strings.TrimPrefix(runtime.Version(), "go"); args["GO_VERSION"] != ours {
		t.Fatalf("dist/Dockerfile builds with Go %q but this is tested with Go %s: set ARG GO_VERSION=%s", args["GO_VERSION"], ours, ours)
	}
	if cmpVersion(args["GO_VERSION"], string(m[1])) < 0 {
		t.Fatalf("dist/Dockerfile's Go %s is older than go.mod's %s", args["GO_VERSION"], m[1])
	}
}

func cmpVersion(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// The build stage makes a static binary (it must run on an empty base
// image) with Gatehouse in it.
func TestBuildStageMakesStaticBinary(t *testing.T) {
	bin := buildStage(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary asks for a dynamic loader: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	out, err := exec.Command(bin, "list-modules").Output()
	if err != nil || !regexp.MustCompile(`(?m)^gatehouse$`).Match(out) {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
}

// As in the image: uid 65532, nothing but the environment the
// Dockerfile sets, and a data directory of its own. The store and
// Caddy's state land in it, private.
func TestRunsAsTheImageUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process as uid 65532 (CI runs as root)")
	}
	bin := buildStage(t) // in scratch, which that user can read
	root := filepath.Join(scratch, "run")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	data, config := filepath.Join(root, "data"), filepath.Join(root, "config")
	for _, d := range []string{data, config} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65532, 65532); err != nil {
			t.Fatal(err)
		}
	}
	exe := bin
	admin, site := freePort(t), freePort(t)
	caddyfile := filepath.Join(root, "Caddyfile")
	os.WriteFile(caddyfile, fmt.Appendf(nil, `{
	admin 127.0.0.1:%d
	gatehouse {
		issuer http://localhost:%d
		dev
	}
}
http://localhost:%d {
	bind 127.0.0.1
	gatehouse_idp
}
`, admin, site, site), 0o644)
	cmd := exec.Command(exe, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Dir = root
	cmd.Env = []string{"XDG_DATA_HOME=" + data, "XDG_CONFIG_HOME=" + config, "HOME=" + data}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/.well-known/openid-configuration", site)
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = fmt.Sprintf("localhost:%d", site)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy as uid 65532 did not serve discovery: %v\n%s", err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	db := filepath.Join(data, "caddy", "gatehouse", "gatehouse.db")
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatalf("no store in the data directory: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o600 || st.Uid != 65532 {
		t.Fatalf("store %s: mode %v, owner %d; want 0600 and 65532", db, fi.Mode().Perm(), st.Uid)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	return freeport.Must(t)
}
