package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/sets"
)

// TestEventsCaddyfileErrors: each mistake in the events block is found
// at caddy adapt, with its line.
func TestEventsCaddyfileErrors(t *testing.T) {
	wrap := func(body string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tevents {\n" + body + "\n\t\t}\n\t}\n}\n"
	}
	cases := []struct{ name, input, want string }{
		{"unknown event", wrap("receiver https://hr.example/s {\nevents login logon\n}"), `unknown event "logon" (events: login, logout`},
		{"plain http", wrap("receiver http://hr.example/s"), "plain http would send the SETs readable on the network; use https (http is only for localhost), at Caddyfile:5"},
		{"private address", wrap("receiver https://10.0.0.8/s"), "not a public internet address: add private_networks to allow it, at Caddyfile:5"},
		{"this machine", wrap("\nreceiver http://localhost:9/s"), "is on this machine: add private_networks to allow it, at Caddyfile:6"},
		{"twice", wrap("receiver https://hr.example/s\nreceiver https://hr.example/s"), "receiver https://hr.example/s is configured twice, at Caddyfile:6"},
		{"no receiver", wrap("max_queued 5"), "events needs at least one receiver"},
		{"bad max_queued", wrap("receiver https://hr.example/s\nmax_queued -1"), "max_queued must be a positive whole number"},
		{"unknown option", wrap("receiver https://hr.example/s {\nsecret x\n}"), `unknown receiver option "secret"`},
		{"unknown block option", wrap("retries 3"), `unknown events option "retries"`},
		{"no URL", wrap("receiver"), "receiver takes exactly one value"},
		{"events twice", wrap("receiver https://hr.example/s {\nevents login\nevents logout\n}"), "events is given twice"},
		{"configured twice", "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tevents {\nreceiver https://hr.example/s\n}\nevents {\nreceiver https://hr.example/t\n}\n\t}\n}\n", "events is configured twice"},
	}
	checkAdaptErrors(t, cases)
}

// FuzzEventsCaddyfile: any events block parses or is refused with an
// error, never a panic; what parses has only receivers that pass the
// checks made at start, and survives a JSON round trip.
func FuzzEventsCaddyfile(f *testing.F) {
	for _, s := range []string{
		"events {\nreceiver https://hr.example/s {\nevents login logout\naudience hr\n}\n}",
		"events {\nreceiver http://127.0.0.1:9/s {\nprivate_networks\nauthorization \"Bearer x\"\n}\nmax_queued 10\n}",
		"events {\nreceiver https://{env.HR}/s\n}",
		"events {\nreceiver https://u@h/#x {\nevents user_deleted user_deleted\n}\n}",
		"events {\nreceiver\n}",
		"events x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, ok := fuzzDispenser(input)
		if !ok {
			return
		}
		d.Next()
		ec, err := parseEventsBlock(d)
		if err != nil {
			return
		}
		for _, r := range ec.Receivers {
			if err := sets.ParseKinds(r.Events); err != nil {
				t.Fatalf("parsed a receiver with bad events: %v", err)
			}
			if !strings.Contains(r.URL, "{") {
				if err := r.Validate(); err != nil {
					t.Fatalf("parsed a receiver that start would refuse: %v", err)
				}
			}
		}
		b, err := json.Marshal(ec)
		if err != nil {
			t.Fatal(err)
		}
		var back EventsConfig
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if b2, _ := json.Marshal(back); string(b2) != string(b) {
			t.Fatalf("JSON round trip differs:\n%s\n%s", b, b2)
		}
	})
}
