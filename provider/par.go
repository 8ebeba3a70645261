package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Pushed authorization requests (RFC 9126).
const (
	PathPAR = "/par"
	keyPAR  = "par:"
	// parTTL is how long a pushed request waits for the browser (RFC
	// 9126 §2.2 suggests 5 to 600 seconds; the browser is redirected at
	// once).
	parTTL = 90 * time.Second
	// maxPushedHandle bounds the random part of a request_uri we accept.
	maxPushedHandle = 64
	// maxPushedPerWindow caps the requests one client pushes per parTTL
	// window: a public client needs no secret to push, so without a cap
	// anyone could fill the store (at most this many × maxQueryBytes per
	// client). A client over it gets 429 and can still send its requests
	// to the authorization endpoint directly, unless it must push them.
	maxPushedPerWindow = 5000
	keyPushedCount     = "par-n:"
	// maxPushedPerAddress caps, per address and parTTL window, the
	// requests pushed without client authentication (public clients):
	// the per-client cap alone let one stranger keep maxPushedPerWindow
	// requests of every public client, and as many public clients as
	// open registration gave him. A person's browser pushes one request
	// per sign-in.
	maxPushedPerAddress = 60
	keyPushedByAddress  = "par-ip:"
)

var errTooManyPushed = errors.New("too many pushed requests")

// pushedRequest is a validated authorization request waiting for the
// browser. It is kept by the hash of its request_uri.
type pushedRequest struct {
	ClientID string     `json:"client_id"`
	Params   url.Values `json:"params"`
	Expires  time.Time  `json:"expires"`
}

// par is the pushed authorization request endpoint: the client, having
// authenticated as at the token endpoint, posts the parameters of an
// authorization request (or a request object with them); they are
// checked as the authorization endpoint checks them and kept for a short
// time under a request_uri that the client then sends the browser with.
// Errors are JSON (RFC 9126 §2.3): nothing here is redirected.
func (p *Provider) par(w http.ResponseWriter, r *http.Request) {
	form, oerr := p.readTokenForm(w, r, "the pushed authorization request endpoint")
	var client *Client
	if oerr == nil {
		client, oerr = p.authenticateClient(r, form)
	}
	var params url.Values
	if oerr == nil {
		params, oerr = p.pushedParams(r, client, form)
	}
	if oerr == nil && client.Public {
		oerr = p.countPushedByAddress(r, client)
	}
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	handle, err := p.tokens.push(r.Context(), pushedRequest{ClientID: client.ID, Params: params}, parTTL)
	if errors.Is(err, errTooManyPushed) {
		p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.RateLimited, Client: client.ID, IP: regulate.ClientIP(r), Reason: "pushed authorization requests"})
		writeJSONError(w, errTooManyPushes("this client", parTTL))
		return
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: saving pushed request", "error", err)
		writeJSONError(w, errServer("could not save the request"))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": requestURIPrefix + handle, "expires_in": expiresIn(parTTL)})
}

// countPushedByAddress counts a request pushed without client
// authentication against its address's cap.
func (p *Provider) countPushedByAddress(r *http.Request, client *Client) *oauthError {
	ip := regulate.ClientIP(r)
	wait, err := p.tokens.countRequest(r.Context(), keyPushedByAddress+regulate.IP(ip).Value, maxPushedPerAddress, parTTL)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: counting pushed requests", "error", err)
		return errServer("could not save the request")
	}
	if wait > 0 {
		p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.RateLimited, Client: client.ID, IP: ip, Reason: "pushed authorization requests from one address"})
		return errTooManyPushes("this address", wait)
	}
	return nil
}

func errTooManyPushes(from string, wait time.Duration) *oauthError {
	return &oauthError{Code: "invalid_request", Description: "too many pushed requests from " + from + "; retry later",
		status: http.StatusTooManyRequests, retryAfter: max(int(expiresIn(wait+time.Second-1)), 1)}
}

// pushedParams are the authorization parameters of a pushed request,
// validated: client credentials left out, the request object (if any)
// verified and used alone (RFC 9126 §3, RFC 9101 §5), the redirect URI
// registered, and the rest checked by the authorization endpoint's own
// parser.
func (p *Provider) pushedParams(r *http.Request, client *Client, form url.Values) (url.Values, *oauthError) {
	params := url.Values{}
	for k, v := range form {
		switch k {
		case "client_secret", "client_assertion", "client_assertion_type":
		default:
			params[k] = v
		}
	}
	if id := params.Get("client_id"); id != "" && id != client.ID {
		return nil, errInvalidRequest("client_id is not the authenticated client")
	}
	if params.Has("request_uri") {
		return nil, errInvalidRequest("request_uri cannot be pushed")
	}
	if params.Has("request") {
		obj, oerr := p.requestObjectParams(r.Context(), client, params.Get("request"))
		if oerr != nil {
			p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.TokenMisuse, Client: client.ID, IP: regulate.ClientIP(r),
				Reason: "pushed " + oerr.Code + ": " + oerr.Description})
			return nil, oerr
		}
		params = obj
	}
	params.Set("client_id", client.ID)
	if uri := params.Get("redirect_uri"); !client.HasRedirectURI(uri) {
		p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.BadRedirectURI, Client: client.ID, IP: regulate.ClientIP(r), Target: uri})
		return nil, errInvalidRequest("redirect_uri is missing or not registered for this client")
	}
	if len(params.Encode()) > maxQueryBytes {
		return nil, errInvalidRequest("the request is too large")
	}
	if _, oerr := p.parseAuthRequest(params, client); oerr != nil {
		e := *oerr
		if e.status == 0 {
			e.status = http.StatusBadRequest
		}
		return nil, &e
	}
	return params, nil
}

// takePushed redeems a pushed request for client: once, before it
// expires, and only by the client that pushed it.
func (p *Provider) takePushed(ctx context.Context, client *Client, handle string) (url.Values, *oauthError) {
	if handle == "" || len(handle) > maxPushedHandle {
		return nil, errRequestURI("request_uri is malformed")
	}
	pr, err := p.tokens.takePushed(ctx, handle)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errRequestURI("request_uri is unknown, expired or already used")
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: loading pushed request", "error", err)
		return nil, &oauthError{Code: "server_error", Description: "could not load the pushed request", status: http.StatusInternalServerError}
	}
	if pr.ClientID != client.ID {
		return nil, errRequestURI("request_uri was pushed by another client")
	}
	if !p.tokens.now().Before(pr.Expires) {
		return nil, errRequestURI("request_uri has expired")
	}
	return pr.Params, nil
}

// push keeps a pushed request for ttl under a fresh handle, at most
// maxPushedPerWindow per client and window of ttl.
func (t *tokens) push(ctx context.Context, pr pushedRequest, ttl time.Duration) (string, error) {
	now := t.now()
	window := strconv.FormatInt(now.UnixNano()/int64(ttl), 10)
	err := t.st.Update(ctx, keyPushedCount+pr.ClientID+":"+window, 2*ttl, func(old []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(old))
		if n >= maxPushedPerWindow {
			return nil, errTooManyPushed
		}
		return []byte(strconv.Itoa(n + 1)), nil
	})
	if err != nil {
		return "", err
	}
	handle := randomToken()
	pr.Expires = now.Add(ttl)
	b, err := json.Marshal(pr)
	if err != nil {
		return "", err
	}
	return handle, t.st.Create(ctx, hashKey(keyPAR, handle), b, ttl)
}

// takePushed returns and forgets the pushed request of handle.
func (t *tokens) takePushed(ctx context.Context, handle string) (pushedRequest, error) {
	var pr pushedRequest
	b, err := t.st.Take(ctx, hashKey(keyPAR, handle))
	if err != nil {
		return pr, err
	}
	if err := json.Unmarshal(b, &pr); err != nil {
		return pr, err
	}
	return pr, nil
}
