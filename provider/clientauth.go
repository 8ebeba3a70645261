package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"

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
	keys := []regulate.Key{regulate.Client(id), regulate.IP(ip)}
	if method != AuthNone {
		if oerr := p.regulateBegin(ctx, id, ip, keys); oerr != nil {
			return nil, oerr
		}
	}
	client, err := p.cfg.Clients.Get(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		// Hash anyway so unknown and known clients take similar time.
		(&Client{Secret: "x"}).CheckSecret(secret)
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.UnknownClient, Client: id, IP: ip, Reason: "token endpoint"})
		p.secretFailed(ctx, method, keys)
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
		return nil, errInvalidClient("this client must authenticate with "+client.TokenEndpointAuthMethod, basic)
	}
	if !client.CheckSecret(secret) {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.BadClientSecret, Client: id, IP: ip})
		p.secretFailed(ctx, method, keys)
		return nil, errInvalidClient("client authentication failed", basic)
	}
	p.secretSucceeded(ctx, keys)
	return client, nil
}

// regulateBegin lets a client credential be checked only when regulation
// allows: per client id and per address, the same way for unknown ids.
func (p *Provider) regulateBegin(ctx context.Context, id, ip string, keys []regulate.Key) *oauthError {
	if p.cfg.Regulate == nil {
		return nil
	}
	blocked, err := p.cfg.Regulate.Begin(ctx, keys...)
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

// secretSucceeded clears the failures counted on keys.
func (p *Provider) secretSucceeded(ctx context.Context, keys []regulate.Key) {
	if p.cfg.Regulate == nil {
		return
	}
	if err := p.cfg.Regulate.Succeed(ctx, keys...); err != nil {
		p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
	}
}

// secretFailed counts a failed client authentication on its keys.
func (p *Provider) secretFailed(ctx context.Context, method string, keys []regulate.Key) {
	if method == AuthNone || p.cfg.Regulate == nil {
		return
	}
	bans, err := p.cfg.Regulate.Fail(ctx, keys...)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
	}
	for _, b := range bans {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.Banned, Key: b.Key.String(), Until: b.Until, Reason: "client authentication"})
	}
}
