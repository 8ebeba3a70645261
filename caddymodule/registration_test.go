package caddymodule

import (
	"strings"
	"testing"
)

func TestRegistrationCaddyfile(t *testing.T) {
	wrap := func(body string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n" + body + "\n\t}\n}\n"
	}
	for _, tc := range []struct{ name, input, want string }{
		{"no policy", wrap("registration"), "registration takes exactly one value"},
		{"two policies", wrap("registration open off"), "registration takes exactly one value"},
		{"unknown policy", wrap("registration sometimes"), `must be off, open or initial_access_token, not "sometimes"`},
		{"unknown option", wrap("registration open {\nburst 3\n}"), `unknown registration option "burst"`},
		{"zero per_ip", wrap("registration open {\nper_ip 0\n}"), "per_ip must be a positive number"},
		{"bad max_clients", wrap("registration open {\nmax_clients lots\n}"), "max_clients must be a positive number"},
		{"option without value", wrap("registration open {\nper_ip\n}"), "per_ip takes exactly one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.input)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %v, want %q with the line", err, tc.want)
			}
		})
	}
	for _, policy := range []string{"off", "open", "initial_access_token"} {
		out, err := adapt(t, wrap("registration "+policy))
		if err != nil || !strings.Contains(string(out), `"registration":{"policy":"`+policy+`"}`) {
			t.Errorf("registration %s: %v %s", policy, err, out)
		}
	}
	if out, _ := adapt(t, wrap("dev")); strings.Contains(string(out), "registration") {
		t.Errorf("registration in a configuration without it: %s", out)
	}
}
