package caddymodule

import (
	"strings"
	"testing"
)

// An oidc module's mistakes are caught when the Caddyfile is adapted,
// naming the line.
func TestFederationCaddyfileErrors(t *testing.T) {
	wrap := func(settings string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t\tchain {\n\t\t\tCorp {\n\t\t\t\tkind oidc\n\t\t\t\tlevels 1 2\n" + settings + "\n\t\t\t}\n\t\t}\n\t}\n}\n"
	}
	ok := "issuer https://login.corp.example\nclient_id gh\n"
	for _, tc := range []struct{ name, settings, want string }{
		{"no issuer", "client_id gh", "issuer is required"},
		{"http issuer", "issuer http://login.corp.example\nclient_id gh", "must be https"},
		{"no client", "issuer https://login.corp.example", "client_id is required"},
		{"acr map", ok + "acr_levels urn:mfa", `acr_levels: "urn:mfa" is not <remote value>=<level>`},
		{"amr map", ok + "amr_levels =2", `amr_levels: "=2"`},
		{"accounts", ok + "accounts always", "accounts is create, link_only or registration"},
		{"domain", ok + "allowed_domains bob@corp.example", "allowed_domains"},
		{"tenant of microsoft", ok + "tenant x", "tenant is a setting of kind microsoft"},
		{"unknown setting", ok + "colour red", `kind oidc has no setting "colour"`},
		{"string list as one", ok + "client_secret a b", "takes one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, wrap(tc.settings))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %v, want %q naming the line", err, tc.want)
			}
		})
	}
}
