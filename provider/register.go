package provider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Dynamic client registration policies (Config.Registration).
const (
	// RegistrationOff: no registration endpoint (the default).
	RegistrationOff = "off"
	// RegistrationOpen: anyone may register a client.
	RegistrationOpen = "open"
	// RegistrationInitialAccessToken: a registration needs an initial
	// access token an admin made (NewInitialAccessToken).
	RegistrationInitialAccessToken = "initial_access_token"
)

// PathRegister is the client registration endpoint (OIDC Dynamic Client
// Registration 1.0, RFC 7591); PathRegister/<client_id> is a registered
// client's configuration endpoint (RFC 7592).
const PathRegister = "/register"

// Defaults of the registration limits.
const (
	defaultRegistrationsPerIP   = 20
	defaultMaxRegisteredClients = 10000
)

// setupRegistration checks the registration settings and adds the
// endpoints.
func (p *Provider) setupRegistration() error {
	c := &p.cfg
	switch c.Registration {
	case "":
		c.Registration = RegistrationOff
	case RegistrationOff, RegistrationOpen, RegistrationInitialAccessToken:
	default:
		return fmt.Errorf("provider: registration must be off, open or initial_access_token, not %q", c.Registration)
	}
	if c.RegistrationsPerIP <= 0 {
		c.RegistrationsPerIP = defaultRegistrationsPerIP
	}
	if c.MaxRegisteredClients <= 0 {
		c.MaxRegisteredClients = defaultMaxRegisteredClients
	}
	p.mux.HandleFunc(p.prefix+PathRegister, p.register)
	p.mux.HandleFunc(p.prefix+PathRegister+"/{client_id}", p.clientConfiguration)
	return nil
}

// RegistrationPolicy is the policy in force.
func (p *Provider) RegistrationPolicy() string { return p.cfg.Registration }

// clientInformation is the answer of the registration and configuration
// endpoints (RFC 7591 §3.2.1, RFC 7592 §3): the client's metadata as
// registered, and how to manage it.
type clientInformation struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	clientMetadata
}

func (p *Provider) clientInformation(c *Client, secret, rat string) clientInformation {
	info := clientInformation{ClientID: c.ID, ClientSecret: secret, ClientIDIssuedAt: c.RegisteredAt.Unix(),
		RegistrationAccessToken: rat, RegistrationClientURI: p.Endpoint(PathRegister + "/" + c.ID),
		clientMetadata: clientMetadata{RedirectURIs: c.RedirectURIs, TokenEndpointAuthMethod: c.AuthMethod(), ClientName: c.Name,
			Scope: strings.Join(c.Scopes, " "), PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
			BackchannelLogoutURI: c.BackchannelLogoutURI, FrontchannelLogoutURI: c.FrontchannelLogoutURI, ClientSettings: c.ClientSettings}}
	if !c.Public {
		never := int64(0) // secrets do not expire
		info.ClientSecretExpiresAt = &never
	}
	return info
}

func errRegistrationOff() *oauthError {
	return &oauthError{Code: "access_denied", Description: "dynamic client registration is turned off on this provider", status: http.StatusForbidden}
}

// register is the client registration endpoint (RFC 7591 §3): POST the
// metadata as JSON; 201 with the client's id, secret and registration
// access token.
func (p *Provider) register(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Registration == RegistrationOff {
		writeJSONError(w, errRegistrationOff())
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, &oauthError{Code: "invalid_request", Description: "registration takes POST", status: http.StatusMethodNotAllowed})
		return
	}
	ctx := r.Context()
	ip := regulate.ClientIP(r)
	var iat string
	if p.cfg.Registration == RegistrationInitialAccessToken {
		iat = bearerHeader(r)
		if iat == "" {
			writeJSONError(w, errInvalidToken("an initial access token is required to register"))
			return
		}
		if err := p.initialAccessLeft(ctx, iat); errors.Is(err, errAccessGone) {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, IP: ip, Reason: "registration with an invalid, expired or used-up initial access token"})
			writeJSONError(w, errInvalidToken("the initial access token is invalid, expired or used up"))
			return
		} else if err != nil {
			p.registrationFailed(w, "checking initial access token", err)
			return
		}
	}
	if oerr := p.limitRegistrations(ctx, ip); oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	c, _, _, oerr := p.readRegistration(w, r)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	c.ID, c.RegisteredAt = newClientID(), p.tokens.now().UTC()
	rat := randomToken()
	c.RegistrationTokenHash = hashOf(rat)
	var secret string
	if usesSecret(&c) {
		secret = NewClientSecret()
	}
	if oerr := checkWithSecret(c, secret); oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	if oerr := p.roomForClients(ctx, ip); oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	if iat != "" {
		if err := p.useInitialAccess(ctx, iat); errors.Is(err, errAccessGone) {
			writeJSONError(w, errInvalidToken("the initial access token is invalid, expired or used up"))
			return
		} else if err != nil {
			p.registrationFailed(w, "using initial access token", err)
			return
		}
	}
	if err := p.cfg.Clients.add(ctx, c, secret, store.SetAdd(setRegistered, c.ID)); err != nil {
		p.registrationFailed(w, "storing registered client", err)
		return
	}
	stored, err := p.cfg.Clients.Get(ctx, c.ID)
	if err != nil {
		p.registrationFailed(w, "reading registered client", err)
		return
	}
	p.cfg.Audit.Record(ctx, audit.Event{Event: audit.ClientRegistered, Client: c.ID, IP: ip, Reason: "registered (" + p.cfg.Registration + ")"})
	writeJSON(w, http.StatusCreated, p.clientInformation(stored, secret, rat))
}

// clientConfiguration is a registered client's configuration endpoint
// (RFC 7592): GET reads, PUT replaces, DELETE removes the registration,
// each with the registration access token as a Bearer token. A wrong or
// missing token, another client's, and an id that is not a registered
// client (unknown, configured or added by an admin) all get the same
// 401, so nothing tells which clients exist.
func (p *Provider) clientConfiguration(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Registration == RegistrationOff {
		writeJSONError(w, errRegistrationOff())
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPut && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeJSONError(w, &oauthError{Code: "invalid_request", Description: "the client configuration endpoint takes GET, PUT or DELETE", status: http.StatusMethodNotAllowed})
		return
	}
	ctx := r.Context()
	id, rat := r.PathValue("client_id"), bearerHeader(r)
	if rat == "" {
		writeJSONError(w, errInvalidToken("a registration access token is required"))
		return
	}
	c, raw, err := p.cfg.Clients.registered(ctx, id, hashOf(rat))
	if errors.Is(err, errNotRegistered) {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, Client: clip(id), IP: regulate.ClientIP(r), Reason: "registration access token refused"})
		writeJSONError(w, errInvalidToken("the registration access token is invalid"))
		return
	} else if err != nil {
		p.registrationFailed(w, "loading registered client", err)
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, p.clientInformation(c, "", rat))
	case http.MethodPut:
		p.updateClient(w, r, c, raw)
	case http.MethodDelete:
		if p.changed(w, r, c.ID, "deleted", p.cfg.Clients.deleteRegistered(ctx, c.ID, raw)) {
			noStore(w)
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// updateClient replaces a registered client's metadata (RFC 7592 §2.2):
// what the request leaves out is reset to its default. The client_id
// must be the client's; a client_secret, if sent, must be the current
// one (a client never chooses its secret). The secret is kept (one is
// issued when a public client becomes confidential); the registration
// access token is rotated, and the new one is in the answer.
func (p *Provider) updateClient(w http.ResponseWriter, r *http.Request, old *Client, raw []byte) {
	ctx := r.Context()
	c, body, fields, oerr := p.readRegistration(w, r)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	var ids struct {
		ClientID     string  `json:"client_id"`
		ClientSecret *string `json:"client_secret"`
	}
	_ = json.Unmarshal(body, &ids) // a client_id of another type is refused below
	if fields["client_id"] == nil || ids.ClientID != old.ID {
		writeJSONError(w, errInvalidRequest("client_id must be given and be this client's id"))
		return
	}
	c.ID, c.RegisteredAt = old.ID, old.RegisteredAt
	var secret string
	switch {
	case !usesSecret(&c):
	case len(old.SecretHash) > 0:
		if ids.ClientSecret != nil && !old.CheckSecret(*ids.ClientSecret) {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.BadClientSecret, Client: old.ID, IP: regulate.ClientIP(r), Reason: "client update"})
			writeJSONError(w, errMetadata("client_secret is not this client's secret (a client cannot choose its secret)"))
			return
		}
		c.SecretHash = old.SecretHash
	default:
		secret = NewClientSecret()
		h := sha256.Sum256([]byte(secret))
		c.SecretHash = h[:]
	}
	rat := randomToken()
	c.RegistrationTokenHash = hashOf(rat)
	if oerr := checkWithSecret(c, ""); oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	if p.changed(w, r, c.ID, "updated", p.cfg.Clients.replaceRegistered(ctx, raw, c)) {
		writeJSON(w, http.StatusOK, p.clientInformation(&c, secret, rat))
	}
}

// changed finishes a change (reason: updated, deleted) of registered
// client id whose store write returned err: audited when made (true),
// else answered as a conflict (another change came first) or a failure.
func (p *Provider) changed(w http.ResponseWriter, r *http.Request, id, reason string, err error) bool {
	switch {
	case errors.Is(err, store.ErrConflict):
		writeJSONError(w, &oauthError{Code: "invalid_request", Description: "the client changed meanwhile; read it and try again", status: http.StatusConflict})
		return false
	case err != nil:
		p.registrationFailed(w, "registered client not "+reason, err)
		return false
	}
	p.cfg.Audit.Record(r.Context(), audit.Event{Event: audit.ClientRegistered, Client: id, IP: regulate.ClientIP(r), Reason: reason})
	return true
}

// readRegistration reads the metadata of a registration or update
// request into a client (without id, secret or registration marks), and
// returns the body and its fields too.
func (p *Provider) readRegistration(w http.ResponseWriter, r *http.Request) (Client, []byte, map[string]json.RawMessage, *oauthError) {
	body, oerr := readMetadataBody(w, r)
	if oerr != nil {
		return Client{}, nil, nil, oerr
	}
	m, fields, oerr := parseMetadata(body)
	if oerr != nil {
		return Client{}, nil, nil, oerr
	}
	c, oerr := p.registeredClient(r.Context(), m)
	return c, body, fields, oerr
}

// limitRegistrations counts a registration request of ip, and refuses it
// past the limit per address and hour.
func (p *Provider) limitRegistrations(ctx context.Context, ip string) *oauthError {
	wait, err := p.countRegistration(ctx, ip)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: counting registrations", "error", err)
		return errServer("could not count registrations")
	}
	if wait > 0 {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RateLimited, IP: ip, Reason: "client registration"})
		e := errInvalidRequest("too many registrations from this address; retry later")
		e.status, e.retryAfter = http.StatusTooManyRequests, max(int(wait.Seconds()), 1)
		return e
	}
	return nil
}

// roomForClients refuses a registration once MaxRegisteredClients
// clients are registered.
func (p *Provider) roomForClients(ctx context.Context, ip string) *oauthError {
	n, err := p.cfg.Clients.registeredCount(ctx)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: counting registered clients", "error", err)
		return errServer("could not count registered clients")
	}
	if n >= p.cfg.MaxRegisteredClients {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RateLimited, IP: ip, Reason: "client registration: registered clients at their limit"})
		return &oauthError{Code: "temporarily_unavailable", Description: "this provider takes no more registrations", status: http.StatusServiceUnavailable}
	}
	return nil
}

func (p *Provider) registrationFailed(w http.ResponseWriter, what string, err error) {
	p.cfg.Logger.Error("gatehouse provider: "+what, "error", err)
	writeJSONError(w, errServer("the registration could not be processed"))
}

// usesSecret reports whether the client authenticates with a secret the
// provider issues.
func usesSecret(c *Client) bool {
	return !c.Public && slices.Contains([]string{AuthSecretBasic, AuthSecretPost, "client_secret_jwt"}, c.AuthMethod())
}

// checkWithSecret runs Client.Validate on c as it will be stored (with
// secret hashed, when given).
func checkWithSecret(c Client, secret string) *oauthError {
	if secret != "" {
		h := sha256.Sum256([]byte(secret))
		c.SecretHash = h[:]
	}
	if err := c.Validate(); err != nil {
		return errMetadata("%s", strings.TrimPrefix(err.Error(), "client "+c.ID+": "))
	}
	return nil
}

// bearerHeader is the token of an "Authorization: Bearer" header, or "".
func bearerHeader(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// newClientID is a fresh client id: 128 random bits, hex.
func newClientID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// clip shortens an id from a request for the audit line.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}
