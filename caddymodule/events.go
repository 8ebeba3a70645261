package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/sets"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// EventsConfig is where Security Event Tokens (RFC 8417) are pushed
// (RFC 8935): Gatehouse's webhooks.
type EventsConfig struct {
	// Receivers get the SETs of the events they ask for.
	Receivers []sets.Receiver `json:"receivers,omitempty"`
	// MaxQueued bounds the SETs waiting for delivery (default 10000);
	// beyond it the oldest are dropped with an error line.
	MaxQueued int `json:"max_queued,omitempty"`
}

// provisionEvents starts turning audit events into SETs when receivers
// are configured.
func (a *App) provisionEvents(st store.Store) error {
	if a.Events == nil || len(a.Events.Receivers) == 0 {
		return nil
	}
	repl := caddy.NewReplacer()
	rs := slices.Clone(a.Events.Receivers)
	for i := range rs {
		rs[i].URL = repl.ReplaceKnown(rs[i].URL, "")
		rs[i].Audience = repl.ReplaceKnown(rs[i].Audience, "")
		rs[i].Authorization = repl.ReplaceKnown(rs[i].Authorization, "")
	}
	svc, err := sets.New(sets.Config{Store: st, Issuer: a.Issuer, Signer: a.keys, Receivers: rs, Lookup: a.person,
		MaxQueued: a.Events.MaxQueued, Logger: a.logger, Audit: a.audit})
	if err != nil {
		return fmt.Errorf("gatehouse: events: %w", err)
	}
	a.audit.Subscribe(svc.Observe)
	a.sets = svc
	return nil
}

// person is the SETs' view of an account.
func (a *App) person(ctx context.Context, subject, username string) (sets.Person, bool) {
	var u users.User
	var err error
	if subject != "" {
		u, err = a.users.Get(ctx, subject)
	} else {
		u, err = a.users.Lookup(ctx, username)
	}
	if err != nil {
		if !errors.Is(err, users.ErrNotFound) {
			a.logger.Warn("gatehouse events: looking up an account", "error", err)
		}
		return sets.Person{}, false
	}
	claims := map[string]any{"preferred_username": u.Username}
	for k, v := range map[string]string{"name": u.Name, "given_name": u.GivenName, "family_name": u.FamilyName, "email": u.Email} {
		if v != "" {
			claims[k] = v
		}
	}
	if u.Email != "" {
		claims["email_verified"] = u.EmailVerified
	}
	claims["groups"] = append([]string{}, u.Groups...)
	return sets.Person{Subject: u.Subject, Username: u.Username, Email: u.Email, Disabled: u.Disabled, Claims: claims}, true
}
