package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/store"
)

// setTokensBySID indexes a session's access tokens (their store keys),
// so that ending the session revokes them all.
const setTokensBySID = "at-sid:"

// SessionEnded implements logout.Party: every client that got tokens in
// the session and has a backchannel_logout_uri gets a logout token, and
// the session's access tokens are revoked. It is idempotent.
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
		if err := q.Enqueue(ctx, logout.Notice{URI: c.BackchannelLogoutURI, Audience: c.ID, Subject: e.Subject, SID: e.SID}); err != nil {
			return fmt.Errorf("queueing back-channel logout for %s: %w", c.ID, err)
		}
	}
	return p.revokeSession(ctx, e.SID)
}

// revokeSession deletes every access token issued in session sid.
func (p *Provider) revokeSession(ctx context.Context, sid string) error {
	keys, err := p.cfg.Store.SetMembers(ctx, setTokensBySID+sid)
	if err != nil {
		return fmt.Errorf("revoking tokens: %w", err)
	}
	for _, k := range keys {
		if err := p.cfg.Store.Apply(ctx, store.Delete(k), store.SetRemove(setTokensBySID+sid, k)); err != nil {
			return fmt.Errorf("revoking tokens: %w", err)
		}
	}
	return nil
}

var _ logout.Party = (*Provider)(nil)
