package dist

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	image, name string
	instrs      []instruction
}

// parseDockerfile splits a Dockerfile into global ARGs and stages. It
// knows what this repository's Dockerfile uses (comments, parser
// directives, backslash continuations, ${VAR} in FROM); enough to check
// rules, not a full BuildKit front end.
func parseDockerfile(src string) (args map[string]string, stages []stage, err error) {
	args = map[string]string{}
	var cur strings.Builder
	start := 0
	var instrs []instruction
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, nil, fmt.Errorf("line %d: the last instruction ends with a continuation", start)
	}
	for _, in := range instrs {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			var st stage
			for _, w := range f {
				if strings.HasPrefix(w, "--") {
					continue
				}
				if st.image == "" {
					st.image = expand(w, args)
				}
			}
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				st.name = f[len(f)-1]
			}
			if st.image == "" {
				return nil, nil, fmt.Errorf("line %d: FROM without an image", in.line)
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case len(stages) == 0:
			return nil, nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		}
	}
	return args, stages, nil
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func expand(s string, args map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string {
		return args[argRef.FindStringSubmatch(m)[1]]
	})
}

// pinned: a digest, or a tag that is a version number (not latest, not a
// moving name like "bookworm" alone).
var pinnedTag = regexp.MustCompile(`^[^@]+:v?[0-9]+(\.[0-9]+)+([-.][A-Za-z0-9.]+)*$|@sha256:[0-9a-f]{64}$`)

// checkDockerfile returns every rule the Dockerfile breaks.
func checkDockerfile(src string) []string {
	args, stages, err := parseDockerfile(src)
	if err != nil {
		return []string{err.Error()}
	}
	var bad []string
	if len(stages) < 2 {
		bad = append(bad, "want a multi-stage build (a build stage and a small final stage)")
	}
	names := map[string]bool{}
	for _, st := range stages {
		if !names[st.image] && st.image != "scratch" && !pinnedTag.MatchString(st.image) {
			bad = append(bad, fmt.Sprintf("base image %q is not pinned to a version or digest", st.image))
		}
		for _, in := range st.instrs {
			if in.cmd == "ADD" && regexp.MustCompile(`(?i)(https?|ftp)://|git@|\.git\b`).MatchString(in.args) {
				bad = append(bad, fmt.Sprintf("line %d: ADD of a remote source (fetch in a RUN with a checksum, or COPY)", in.line))
			}
			if in.cmd == "COPY" {
				if m := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.args); m != nil && !names[m[1]] {
					bad = append(bad, fmt.Sprintf("line %d: COPY --from=%s names no earlier stage", in.line, m[1]))
				}
			}
		}
		if st.name != "" {
			names[st.name] = true
		}
	}
	if len(stages) == 0 {
		return bad
	}
	final := stages[len(stages)-1]
	user := ""
	var volumes, entry string
	for _, in := range final.instrs {
		switch in.cmd {
		case "USER":
			user = in.args
		case "VOLUME":
			volumes = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "RUN":
			if user != "" {
				bad = append(bad, fmt.Sprintf("line %d: RUN after USER in the final stage", in.line))
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	switch {
	case user == "":
		bad = append(bad, "the final stage sets no USER: the container would run as root")
	case uid == "root" || strings.Trim(uid, "0") == "" || args[uid] != "":
		bad = append(bad, fmt.Sprintf("the final stage runs as %q, which is root (or not a fixed user)", user))
	}
	if !strings.Contains(volumes, `"/data"`) {
		bad = append(bad, `the final stage declares no VOLUME for the data directory "/data"`)
	}
	var ep []string
	if json.Unmarshal([]byte(entry), &ep) != nil || len(ep) == 0 {
		bad = append(bad, "ENTRYPOINT is not in exec form (a JSON array): signals would go to a shell")
	}
	build := stages[0]
	var env, cmds string
	for _, in := range build.instrs {
		if in.cmd == "ENV" {
			env += " " + in.args
		}
		if in.cmd == "RUN" {
			cmds += "\n" + in.args
		}
	}
	if !strings.Contains(env, "CGO_ENABLED=0") {
		bad = append(bad, "the build stage does not set CGO_ENABLED=0: the binary would not be static")
	}
	if !regexp.MustCompile(`go build .*\./cmd/caddy\b`).MatchString(cmds) {
		bad = append(bad, "the build stage does not go build ./cmd/caddy")
	}
	return bad
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfileRules(t *testing.T) {
	if bad := checkDockerfile(readDockerfile(t)); len(bad) > 0 {
		t.Fatalf("dist/Dockerfile:\n%s", strings.Join(bad, "\n"))
	}
}

// The checker is tried on Dockerfiles that break each rule, so that a
// rule that stopped working is noticed.
func TestDockerfileRulesCatch(t *testing.T) {
	good := readDockerfile(t)
	cases := map[string]struct{ from, to, want string }{
		"one stage":        {"FROM scratch", "", "multi-stage"},
		"latest":           {"ARG GO_VERSION=1.26.8", "ARG GO_VERSION=latest", "not pinned"},
		"moving tag":       {"FROM golang:${GO_VERSION}", "FROM golang:bookworm", "not pinned"},
		"no tag":           {"FROM golang:${GO_VERSION}", "FROM golang", "not pinned"},
		"root user":        {"USER 65532:65532", "USER root", "root"},
		"uid 0":            {"USER 65532:65532", "USER 0:0", "root"},
		"no user":          {"USER 65532:65532", "", "no USER"},
		"remote add":       {"COPY go.mod go.sum ./", "ADD https://example.com/x.tar.gz ./", "remote"},
		"cgo":              {"CGO_ENABLED=0", "CGO_ENABLED=1", "CGO_ENABLED=0"},
		"shell entrypoint": {`ENTRYPOINT ["/usr/bin/caddy"]`, "ENTRYPOINT /usr/bin/caddy run", "exec form"},
		"no volume":        {`VOLUME ["/data", "/config"]`, "", "VOLUME"},
		"unknown stage":    {"COPY --from=build /out/caddy", "COPY --from=builder /out/caddy", "no earlier stage"},
		"misspelt arg":     {"FROM golang:${GO_VERSION}", "FROM golang:${GO_VERSON}", "not pinned"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(good, c.from) {
				t.Fatalf("the Dockerfile has no %q to change", c.from)
			}
			src := strings.Replace(good, c.from, c.to, 1)
			bad := checkDockerfile(src)
			if len(bad) == 0 || !strings.Contains(strings.Join(bad, "\n"), c.want) {
				t.Fatalf("not caught; checker says %q", bad)
			}
		})
	}
}

func FuzzParseDockerfile(f *testing.F) {
	if b, err := os.ReadFile("Dockerfile"); err == nil {
		f.Add(string(b))
	}
	f.Add("FROM a AS b\nUSER x\\\n")
	f.Fuzz(func(t *testing.T, src string) {
		checkDockerfile(src) // must not panic
	})
}
