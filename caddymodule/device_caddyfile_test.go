package caddymodule

import (
	"strings"
	"testing"
)

func TestCaddyfileDeviceErrors(t *testing.T) {
	wrap := func(body string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n" + body + "\n\t}\n}\n"
	}
	for _, tc := range []struct{ name, input, want string }{
		{"ttl not a duration", wrap("device_code_ttl soon"), "not a positive duration"},
		{"ttl zero", wrap("device_code_ttl 0s"), "not a positive duration"},
		{"interval negative", wrap("device_poll_interval -5s"), "not a positive duration"},
		{"interval in milliseconds", wrap("device_poll_interval 1500ms"), "whole number of seconds"},
		{"interval two values", wrap("device_poll_interval 5s 10s"), "exactly one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.input)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %v, want %q naming the line", err, tc.want)
			}
		})
	}
}
