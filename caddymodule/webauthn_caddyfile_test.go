package caddymodule

import (
	"fmt"
	"testing"
)

// Bad settings of the webauthn kind are refused by `caddy adapt`, each
// error exactly as shown, naming the line: the setting's own, or the
// module's for settings wrong together.
func TestWebAuthnCaddyfileErrors(t *testing.T) {
	// The module's block starts at line 7, its first setting is line 9.
	chainOf := func(settings string) string {
		return fmt.Sprintf("{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tchain {\n\t\t\tpassword { \n\t\t\t}\n\t\t\tkey {\n\t\t\t\tkind webauthn\n%s\n\t\t\t}\n\t\t}\n\t}\n}\n", settings)
	}
	cases := []struct{ settings, want string }{
		{"user_verification always", `module key: user_verification is required, preferred or discouraged, not "always", at Caddyfile:7`},
		{"attestation enterprise", `module key: attestation is none, indirect or direct, not "enterprise", at Caddyfile:7`},
		{"resident_key", `module key: setting resident_key: takes one value, not 0, at Caddyfile:9`},
		{"resident_key maybe", `module key: resident_key is required, preferred or discouraged, not "maybe", at Caddyfile:7`},
		{"aaguids 2fc0579f-8113-47ea-b116-bb5a8db9202a", `module key: aaguids need attestation direct or indirect (with none, authenticators do not say what they are), at Caddyfile:7`},
		{"attestation direct\naaguids yubikey", `module key: aaguid "yubikey" is not an AAGUID like 2fc0579f-8113-47ea-b116-bb5a8db9202a, at Caddyfile:7`},
		{"timeout soon", `module key: setting timeout: "soon" is not a duration (like 15m, 36h or 30d), at Caddyfile:9`},
		{"timeout 1h", `module key: timeout is between 10s and 5m0s, not 1h0m0s, at Caddyfile:7`},
		{"origins https://a.example/login", `module key: origin "https://a.example/login" is not an origin like https://login.example.com, at Caddyfile:7`},
		{"rp_id https://a.example", `module key: rp_id "https://a.example" is no domain name, at Caddyfile:7`},
		{"refuse_cloned perhaps", `module key: setting refuse_cloned: is true or false, not "perhaps", at Caddyfile:9`},
		{"counter strict", `module key: setting counter: kind webauthn has no setting "counter" (known: aaguids, attestation, mandatory, origins, refuse_cloned, resident_key, rp_id, rp_name, timeout, user_verification), at Caddyfile:9`},
	}
	for _, c := range cases {
		t.Run(c.settings, func(t *testing.T) {
			_, err := adapt(t, chainOf("\t\t\t\t"+c.settings))
			if err == nil || err.Error() != "parsing caddyfile tokens for 'gatehouse': "+c.want {
				t.Fatalf("error\n  %v\nwant\n  %s", err, c.want)
			}
		})
	}
}
