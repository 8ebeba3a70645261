package oidc

import (
	"context"
	"net/url"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/session"
)

// LogoutURL is the provider's end_session_endpoint for a person who
// signed in through it (logout_upstream): with client_id, so the
// provider knows who asks and confirms with the person; "" when the
// setting is off or the provider has no such endpoint.
func (m *Module) LogoutURL(_ context.Context, _ session.Passed) (string, string, error) {
	if !m.s.LogoutUpstream {
		return "", "", nil
	}
	p, err := m.discover()
	if err != nil {
		return "", "", err
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil || meta.EndSession == "" {
		return "", "", err
	}
	u, err := url.Parse(meta.EndSession)
	if err != nil || (u.Scheme != "https" && (u.Scheme != "http" || !loopback(u.Hostname()))) {
		return "", "", nil // nowhere a browser should be sent
	}
	q := u.Query()
	q.Set("client_id", m.s.ClientID)
	u.RawQuery = q.Encode()
	return m.label, u.String(), nil
}

var _ chain.UpstreamLogout = (*Module)(nil)
