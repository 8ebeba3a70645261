package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/logout"
)

// SessionEnded implements logout.Party: every client that got tokens in
// the session and has a backchannel_logout_uri gets a logout token, and
// the session's access tokens and online refresh tokens are revoked. It
// is idempotent.
func (p *Provider) SessionEnded(ctx context.Context, e logout.Ended, q *logout.Queue) error {
	if e.SID == "" {
		return nil // tokens of sessions that ended before were revoked then
	}
	for _, id := range e.Clients {
		c, err := p.cfg.Clients.Get(ctx, id)
		if errors.Is(err, ErrUnknownClient) {
			continue
		} else if err != nil {
			return err
		}
		if c.BackchannelLogoutURI == "" {
			continue
		}
		if err := q.Enqueue(ctx, logout.Notice{URI: c.BackchannelLogoutURI, Audience: c.ID, Subject: p.subjectFor(ctx, c, e.Subject), SID: e.SID,
			Untrusted: p.guarded(c)}); err != nil {
			return fmt.Errorf("queueing back-channel logout for %s: %w", c.ID, err)
		}
	}
	return p.tokens.revokeSession(ctx, e.SID)
}

var _ logout.Party = (*Provider)(nil)
