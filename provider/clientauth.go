package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// authenticateClient applies RFC 6749 §2.3: client_secret_basic,
// client_secret_post, client_secret_jwt and private_key_jwt (RFC 7523,
// in clientassert.go), or none for public clients.
func (p *Provider) authenticateClient(r *http.Request, form url.Values) (*Client, *oauthError) {
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		if r.Header.Get("Authorization") != "" || form.Has("client_secret") {
			return nil, errInvalidRequest("use one client authentication method, not two")
		}
		return p.authenticateAssertion(r, form)
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both parts are form-urlencoded first.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, errInvalidRequest("malformed Authorization header")
		}
		if form.Has("client_secret") {
			return nil, errInvalidRequest("use one client authentication method, not two")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, errInvalidRequest("client_id does not match the Authorization header")
		}
	} else if r.Header.Get("Authorization") != "" {
		return nil, errInvalidClient("unsupported Authorization scheme", true)
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	method := AuthNone
	switch {
	case basic:
		method = AuthSecretBasic
	case form.Has("client_secret"):
		method = AuthSecretPost
	}
	if id == "" || len(id) > 128 {
		return nil, errInvalidClient("client authentication is required", true)
	}
	ctx := r.Context()
	ip := regulate.ClientIP(r)
	failed := false
	if method != AuthNone {
		done, oerr := p.guardCredential(ctx, id, ip)
		if oerr != nil {
			return nil, oerr
		}
		defer func() { done(failed) }()
	}
	client, err := p.cfg.Clients.Get(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		// Hash anyway so unknown and known clients take similar time.
		(&Client{Secret: "x"}).CheckSecret(secret)
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.UnknownClient, Client: id, IP: ip, Reason: "token endpoint"})
		failed = method != AuthNone
		return nil, errInvalidClient("client authentication failed", basic)
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: looking up client", "error", err)
		return nil, errServer("could not look up the client")
	}
	if client.Public {
		if method != AuthNone {
			return nil, errInvalidClient("a public client has no secret", basic)
		}
		return client, nil
	}
	if method == AuthNone {
		return nil, errInvalidClient("client authentication is required", true)
	}
	// A method set explicitly in the registration is enforced; otherwise
	// either secret method is accepted (clients often auto-detect).
	if client.TokenEndpointAuthMethod != "" && client.TokenEndpointAuthMethod != method {
		failed = true
		return nil, errInvalidClient("this client must authenticate with "+client.TokenEndpointAuthMethod, basic)
	}
	if !client.CheckSecret(secret) {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.BadClientSecret, Client: id, IP: ip})
		failed = true
		return nil, errInvalidClient("client authentication failed", basic)
	}
	return client, nil
}

// credentialLocks serialise, per client id and in this process, the
// checks of the credentials clients present (see guardCredential). One
// lock per id in use, so a client whose check is slow (a far jwks_uri)
// holds up no other.
type credentialLocks struct {
	mu    sync.Mutex
	locks map[string]*credentialLock
	// failures counts the failures counted in this process.
	failures atomic.Uint64
}

type credentialLock struct {
	sync.Mutex
	users int
}

// lock takes id's lock and returns its release.
func (l *credentialLocks) lock(id string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*credentialLock{}
	}
	c := l.locks[id]
	if c == nil {
		c = &credentialLock{}
		l.locks[id] = c
	}
	c.users++
	l.mu.Unlock()
	c.Lock()
	return func() {
		c.Unlock()
		l.mu.Lock()
		if c.users--; c.users == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}

// guardCredential lets a client credential be checked only when
// regulation allows — per client id and per address, the same way for
// unknown ids — and returns done, which must be called with whether the
// credential failed. A right credential costs one read and no write (a
// busy client is not slowed); a wrong one is counted before the next
// check of the same client id in this process begins (the lock), so
// guesses sent at once are counted one by one, each answered by the
// delay or ban the one before it earned.
func (p *Provider) guardCredential(ctx context.Context, id, ip string) (done func(failed bool), oerr *oauthError) {
	if p.cfg.Regulate == nil {
		return func(bool) {}, nil
	}
	// Failures count for this client from this address, and for the
	// address; a ban of the client id itself (an admin's) stops all.
	keys := []regulate.Key{regulate.ClientFrom(id, ip), regulate.IP(ip)}
	check := func() *oauthError {
		blocked, err := p.cfg.Regulate.Check(ctx, append(keys, regulate.Client(id))...)
		if err != nil {
			p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
			return errServer("could not check the client")
		}
		if blocked != nil {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RateLimited, Client: id, IP: ip, Key: blocked.Key.String(), Reason: "token endpoint"})
			return errSlowDown(blocked.RetryAfter)
		}
		return nil
	}
	// Checked before the lock, in parallel (a store that does not answer
	// fails every request at once, not one after the other), and again
	// under the lock only if a failure was counted meanwhile — so
	// guesses sent at once still meet the delay the one before earned.
	failures := p.credentialLocks.failures.Load()
	if oerr := check(); oerr != nil {
		return nil, oerr
	}
	unlock := p.credentialLocks.lock(id)
	if p.credentialLocks.failures.Load() != failures {
		if oerr := check(); oerr != nil {
			unlock()
			return nil, oerr
		}
	}
	return func(failed bool) {
		defer unlock()
		if !failed {
			return
		}
		defer p.credentialLocks.failures.Add(1)
		bans, err := p.cfg.Regulate.Count(context.WithoutCancel(ctx), keys...)
		if err != nil {
			p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
		}
		for _, b := range bans {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.Banned, Key: b.Key.String(), Until: b.Until, Reason: "client authentication"})
		}
	}, nil
}
