package caddymodule

import (
	"os"
	"strings"
)

// validatingOnly reports whether this process is `caddy validate` or
// `caddy adapt --validate`: Caddy provisions the configuration to check
// it and never starts it. Caddy does not tell modules, so the command
// line says it: the first argument that is not a flag.
func validatingOnly() bool { return validatingArgs(os.Args) }

func validatingArgs(args []string) bool {
	if len(args) < 2 {
		return false
	}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		return a == "validate" || a == "adapt"
	}
	return false
}
