package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/store"
)

// What dynamic registration keeps besides the clients themselves:
// initial access tokens (by hash, with their uses left) and a count of
// registration requests per client address and hour.
const (
	setRegistered     = "clients-registered"
	keyInitialAccess  = "dcr-iat:"
	keyRegistrationIP = "dcr-ip:"
	registrationHour  = time.Hour
	// maxInitialAccessUses and maxInitialAccessTTL bound what an admin
	// hands out in one token.
	maxInitialAccessUses = 10000
	maxInitialAccessTTL  = 366 * 24 * time.Hour
)

// errNotRegistered: no client registered itself with that id and token.
var errNotRegistered = errors.New("no such registered client")

// registered returns the client id if it registered itself with the
// registration access token whose hash is tokHash. Configured clients,
// clients an admin added and unknown ids are errNotRegistered, the same
// way, as is a wrong token.
func (c *Clients) registered(ctx context.Context, id, tokHash string) (*Client, []byte, error) {
	c.mu.RLock()
	_, static := c.static[id]
	c.mu.RUnlock()
	b, err := c.st.Get(ctx, keyClient+id)
	if errors.Is(err, store.ErrNotFound) || static || id == "" || len(id) > 128 {
		sameHash(tokHash, hashOf("")) // as long as a comparison
		return nil, nil, errNotRegistered
	} else if err != nil {
		return nil, nil, fmt.Errorf("loading client: %w", err)
	}
	var cl Client
	if err := json.Unmarshal(b, &cl); err != nil {
		return nil, nil, fmt.Errorf("decoding client %s: %w", id, err)
	}
	ok := sameHash(tokHash, cl.RegistrationTokenHash)
	if !ok || cl.RegisteredAt.IsZero() || cl.RegistrationTokenHash == "" {
		return nil, nil, errNotRegistered
	}
	return &cl, b, nil
}

// replaceRegistered replaces a registered client with next if its
// record is still old, as read with its token (compare and set).
func (c *Clients) replaceRegistered(ctx context.Context, old []byte, next Client) error {
	next.Secret, next.Static = "", false
	if err := next.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	ops := []store.Op{store.Match(keyClient+next.ID, old), store.Put(keyClient+next.ID, b, 0)}
	if !next.needsPlainSecret() {
		ops = append(ops, store.Delete(keyClientHMAC+next.ID)) // the secret in the clear is kept only while needed
	}
	if err := c.st.Apply(ctx, ops...); err != nil {
		return fmt.Errorf("saving client: %w", err)
	}
	return nil
}

// deleteRegistered deletes a registered client if it is still the one
// read (old).
func (c *Clients) deleteRegistered(ctx context.Context, id string, old []byte) error {
	err := c.st.Apply(ctx, store.Match(keyClient+id, old), store.Delete(keyClient+id), store.Delete(keyClientHMAC+id),
		store.SetRemove(setClients, id), store.SetRemove(setRegistered, id))
	if err != nil {
		return fmt.Errorf("deleting client: %w", err)
	}
	return nil
}

// registeredCount is the number of clients that registered themselves.
func (c *Clients) registeredCount(ctx context.Context) (int, error) {
	ids, err := c.st.SetMembers(ctx, setRegistered)
	return len(ids), err
}

// initialAccess is an initial access token's record (kept by its hash).
type initialAccess struct {
	Uses    int       `json:"uses"`
	Expires time.Time `json:"expires"`
}

// NewInitialAccessToken makes an initial access token (RFC 7591 §3) good
// for uses registrations within ttl. Only its hash is kept: the token is
// shown once.
func (p *Provider) NewInitialAccessToken(ctx context.Context, ttl time.Duration, uses int) (string, time.Time, error) {
	if ttl <= 0 || ttl > maxInitialAccessTTL {
		return "", time.Time{}, fmt.Errorf("the lifetime of an initial access token must be positive and at most %v", maxInitialAccessTTL)
	}
	if uses < 1 || uses > maxInitialAccessUses {
		return "", time.Time{}, fmt.Errorf("an initial access token is good for 1 to %d registrations", maxInitialAccessUses)
	}
	tok := randomToken()
	rec := initialAccess{Uses: uses, Expires: p.tokens.now().Add(ttl)}
	b, _ := json.Marshal(rec)
	if err := p.cfg.Store.Create(ctx, hashKey(keyInitialAccess, tok), b, ttl); err != nil {
		return "", time.Time{}, fmt.Errorf("storing initial access token: %w", err)
	}
	return tok, rec.Expires, nil
}

// errAccessGone: no such initial access token, expired or used up.
var errAccessGone = errors.New("initial access token invalid, expired or used up")

// initialAccessLeft reports whether tok is a live initial access token,
// without using it.
func (p *Provider) initialAccessLeft(ctx context.Context, tok string) error {
	if tok == "" || len(tok) > 512 {
		return errAccessGone
	}
	b, err := p.cfg.Store.Get(ctx, hashKey(keyInitialAccess, tok))
	if errors.Is(err, store.ErrNotFound) {
		return errAccessGone
	} else if err != nil {
		return err
	}
	var rec initialAccess
	if json.Unmarshal(b, &rec) != nil || rec.Uses < 1 || !p.tokens.now().Before(rec.Expires) {
		return errAccessGone
	}
	return nil
}

// useInitialAccess takes one use of tok, atomically; the last use
// deletes it.
func (p *Provider) useInitialAccess(ctx context.Context, tok string) error {
	now := p.tokens.now()
	var ttl time.Duration
	if b, err := p.cfg.Store.Get(ctx, hashKey(keyInitialAccess, tok)); err == nil {
		var rec initialAccess
		if json.Unmarshal(b, &rec) == nil {
			ttl = rec.Expires.Sub(now)
		}
	}
	if ttl <= 0 {
		return errAccessGone
	}
	return p.cfg.Store.Update(ctx, hashKey(keyInitialAccess, tok), ttl, func(old []byte) ([]byte, error) {
		var rec initialAccess
		if old == nil || json.Unmarshal(old, &rec) != nil || rec.Uses < 1 || !now.Before(rec.Expires) {
			return nil, errAccessGone
		}
		rec.Uses--
		if rec.Uses == 0 {
			return nil, nil
		}
		return json.Marshal(rec)
	})
}

// registrationWindow counts an address's registration requests in the
// current hour.
type registrationWindow struct {
	N     int       `json:"n"`
	Start time.Time `json:"start"`
}

var errTooManyRegistrations = errors.New("too many registrations")

// countRegistration counts a registration request from ip (an IPv6
// address by its /64); past the limit it returns how long to wait.
func (p *Provider) countRegistration(ctx context.Context, ip string) (time.Duration, error) {
	now := p.tokens.now()
	var wait time.Duration
	err := p.cfg.Store.Update(ctx, keyRegistrationIP+regulate.IP(ip).Value, registrationHour, func(old []byte) ([]byte, error) {
		var w registrationWindow
		if old != nil && json.Unmarshal(old, &w) != nil {
			w = registrationWindow{}
		}
		if now.Sub(w.Start) >= registrationHour || now.Before(w.Start) {
			w = registrationWindow{Start: now}
		}
		if w.N >= p.cfg.RegistrationsPerIP {
			wait = w.Start.Add(registrationHour).Sub(now)
			return nil, errTooManyRegistrations
		}
		w.N++
		return json.Marshal(w)
	})
	if errors.Is(err, errTooManyRegistrations) {
		return wait, nil
	}
	return 0, err
}
