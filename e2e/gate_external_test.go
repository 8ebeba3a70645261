package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestGateWithExternalProvider runs the gate against a provider in
// another process, reached over HTTP like any external OIDC provider,
// with a confidential client registered there.
func TestGateWithExternalProvider(t *testing.T) {
	up := echoUpstream(t)
	idpPort, sitePort := freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", idpPort)
	site := fmt.Sprintf("http://ext.localhost:%d", sitePort)
	idp := startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer %s
		dev
		client ext-gate {
			first_party
			secret ext-secret
			redirect_uri %s/.gatehouse/callback
		}
	}
}
%s {
	gatehouse_idp
}
`, issuer, site, issuer))
	out, err := idp.cli("correct horse battery\n", "user", "add", "alice", "--email", "alice@example.com", "--password-stdin")
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	startCaddy(t, fmt.Sprintf(`{
	admin {admin}
	default_bind 127.0.0.1
	gatehouse {
		issuer http://unused.localhost
		dev
	}
}
%s {
	gatehouse_gate {
		issuer %s
		client_id ext-gate
		client_secret ext-secret
	}
	reverse_proxy %s
}
`, site, issuer, strings.TrimPrefix(up.URL, "http://")))

	s := &gateSetup{idpSetup: &idpSetup{}}
	b := newBrowser(t)
	resp, body, echo := s.visit(t, b, site+"/x", nil)
	if echo == nil || echo["Remote-User"] != "alice" || echo["Remote-Acr"] != "1" {
		t.Fatalf("external provider: %d %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
}
