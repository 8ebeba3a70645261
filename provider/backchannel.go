package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a
// session ends, every client that got tokens in it and has a
// backchannel_logout_uri gets a signed logout token, POSTed in the
// background. Deliveries are kept in the store (they survive a restart),
// retried with exponential back-off, and given up with a log line.

// BackchannelEvent is the events member of a logout token.
const BackchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

const (
	keyDelivery = "bcl:"
	setQueue    = "bcl-queue"
	// lease is how long a claimed delivery is left to its worker.
	lease = time.Minute
)

// delivery is one logout token to POST.
type delivery struct {
	ID       string    `json:"id"`
	URI      string    `json:"uri"`
	Audience string    `json:"aud"`
	Subject  string    `json:"sub"`
	SID      string    `json:"sid,omitempty"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at"`
	Created  time.Time `json:"created"`
}

// DeliveryStats counts back-channel deliveries since start.
type DeliveryStats struct {
	Delivered, Failed, GivenUp atomic.Int64
}

// EnqueueLogout queues a logout token for uri with audience aud (a
// client id, or an upstream's origin) about sub and sid.
func (p *Provider) EnqueueLogout(ctx context.Context, uri, aud, sub, sid string) error {
	now := p.cfg.Sessions.Now()
	d := delivery{ID: randomToken(), URI: uri, Audience: aud, Subject: sub, SID: sid, NextAt: now, Created: now}
	b, _ := json.Marshal(d)
	if err := p.cfg.Store.Set(ctx, keyDelivery+d.ID, b, 24*time.Hour); err != nil {
		return err
	}
	if err := p.cfg.Store.SetAdd(ctx, setQueue, d.ID); err != nil {
		return err
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// sessionEnded queues back-channel logout for every client of s and runs
// the in-process hook (gates).
func (p *Provider) sessionEnded(ctx context.Context, s *session.Session) {
	ctx = context.WithoutCancel(ctx)
	for _, id := range s.Clients {
		c, err := p.cfg.Clients.Get(ctx, id)
		if err != nil || c.BackchannelLogoutURI == "" {
			continue
		}
		if err := p.EnqueueLogout(ctx, c.BackchannelLogoutURI, c.ID, s.Subject, s.ID); err != nil {
			p.cfg.Logger.Error("gatehouse provider: queueing back-channel logout", "client", c.ID, "error", err)
		}
	}
	if p.cfg.OnSessionEnd != nil {
		p.cfg.OnSessionEnd(ctx, s.ID, s.Subject)
	}
	p.cfg.Logger.Info("gatehouse: session ended", "sub", s.Subject, "clients", s.Clients)
}

// LogoutToken mints a logout token (Back-Channel Logout §2.4): typ
// logout+jwt, never a nonce.
func (p *Provider) LogoutToken(aud, sub, sid string) (string, error) {
	now := p.cfg.Sessions.Now()
	claims := map[string]any{
		"iss": p.cfg.Issuer, "aud": aud, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomToken(), "sub": sub, "events": map[string]any{BackchannelEvent: map[string]any{}},
	}
	if sid != "" {
		claims["sid"] = sid
	}
	return p.cfg.Keys.SignClaims("logout+jwt", claims)
}

// RunDeliveries delivers queued logout tokens until ctx ends.
func (p *Provider) RunDeliveries(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		if i%p.cfg.ExpirySweepEvery == 0 {
			// Expired sessions are logged out like ended ones.
			if _, err := p.cfg.Sessions.SweepExpired(ctx); err != nil && !errors.Is(err, store.ErrClosed) {
				p.cfg.Logger.Error("gatehouse provider: sweeping expired sessions", "error", err)
			}
		}
		p.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.wake:
		}
	}
}

// deliverDue tries every delivery whose time has come.
func (p *Provider) deliverDue(ctx context.Context) {
	ids, err := p.cfg.Store.SetMembers(ctx, setQueue)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			p.cfg.Logger.Error("gatehouse provider: reading logout queue", "error", err)
		}
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		d, ok := p.claim(ctx, id)
		if !ok {
			continue
		}
		p.deliver(ctx, d)
	}
}

// claim takes a due delivery for this worker (a lease, so another
// instance does not send it at the same time).
func (p *Provider) claim(ctx context.Context, id string) (delivery, bool) {
	now := p.cfg.Sessions.Now()
	var d delivery
	claimed := false
	err := p.cfg.Store.Update(ctx, keyDelivery+id, 24*time.Hour, func(old []byte) ([]byte, error) {
		claimed = false
		if old == nil {
			return nil, store.ErrNotFound
		}
		if err := json.Unmarshal(old, &d); err != nil {
			return nil, err
		}
		if now.Before(d.NextAt) {
			return old, nil
		}
		claimed = true
		d.NextAt = now.Add(lease)
		return json.Marshal(d)
	})
	if errors.Is(err, store.ErrNotFound) {
		_ = p.cfg.Store.SetRemove(ctx, setQueue, id)
		return d, false
	}
	return d, err == nil && claimed
}

func (p *Provider) deliver(ctx context.Context, d delivery) {
	tok, err := p.LogoutToken(d.Audience, d.Subject, d.SID)
	if err == nil {
		err = p.post(ctx, d.URI, tok)
	}
	if err == nil {
		p.Stats.Delivered.Add(1)
		p.finishDelivery(ctx, d.ID)
		return
	}
	p.Stats.Failed.Add(1)
	d.Attempts++
	if d.Attempts >= p.cfg.LogoutAttempts {
		p.Stats.GivenUp.Add(1)
		p.cfg.Logger.Error("gatehouse provider: back-channel logout given up", "uri", d.URI, "aud", d.Audience,
			"attempts", d.Attempts, "error", err)
		p.finishDelivery(ctx, d.ID)
		return
	}
	backoff := p.cfg.LogoutBackoff << (d.Attempts - 1)
	d.NextAt = p.cfg.Sessions.Now().Add(min(backoff, time.Hour))
	p.cfg.Logger.Warn("gatehouse provider: back-channel logout failed; will retry", "uri", d.URI, "attempt", d.Attempts,
		"retry_in", backoff, "error", err)
	b, _ := json.Marshal(d)
	_ = p.cfg.Store.Set(ctx, keyDelivery+d.ID, b, 24*time.Hour)
}

func (p *Provider) finishDelivery(ctx context.Context, id string) {
	_ = p.cfg.Store.Delete(ctx, keyDelivery+id)
	_ = p.cfg.Store.SetRemove(ctx, setQueue, id)
}

func (p *Provider) post(ctx context.Context, uri, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New("receiver answered " + resp.Status)
	}
	return nil
}

// QueueLength is how many logout deliveries wait (or are being retried).
func (p *Provider) QueueLength(ctx context.Context) (int, error) {
	ids, err := p.cfg.Store.SetMembers(ctx, setQueue)
	return len(ids), err
}
