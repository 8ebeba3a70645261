package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/web"
)

// Kind is the kind's name in a chain configuration.
const Kind = "oidc"

func init() {
	chain.Register(Kind, func(d chain.Deps, s Settings) (chain.Module, error) { return New(d, s, "oidc") })
}

// Module is one oidc instance.
type Module struct {
	linked
	d       chain.Deps
	s       Settings
	label   string
	mark    string
	levels  []string
	acrs    levelMap
	amrs    levelMap
	domains domainList
	mapping mapping
	create  bool

	mu       sync.Mutex
	provider *gooidc.Provider
	// failedAt is when discovery last failed: it is not tried again
	// for a while, so that requests (a logout token posted by anyone)
	// cannot make this server hammer a provider that is down.
	failedAt time.Time
	failure  error
}

// authTimeSkew is how far the provider's clock may be behind ours when
// its auth_time is compared with when a fresh sign-in was asked.
const authTimeSkew = time.Minute

// discoveryRetry is how long a failed discovery is not tried again.
const discoveryRetry = 10 * time.Second

// New builds an instance from its settings (checked by Validate); mark
// is the provider's mark on its button (web.Marks).
func New(d chain.Deps, s Settings, mark string) (*Module, error) {
	m := &Module{d: d, s: s, label: s.Label, mark: mark, mapping: newMapping(s)}
	if m.label == "" {
		m.label = d.Name
	}
	m.linked = linked{d: d, label: m.label, issuer: s.Issuer}
	m.acrs, _ = parseLevelMap("acr_levels", s.AcrLevels)
	m.amrs, _ = parseLevelMap("amr_levels", s.AMRLevels)
	m.domains, _ = parseDomains(s.AllowedDomains)
	m.levels, m.create = place(d, s.Accounts)
	if len(m.levels) == 0 {
		return nil, fmt.Errorf("module %q grants no level", d.Name)
	}
	for _, l := range append(m.acrs.levels(), m.amrs.levels()...) {
		if !slices.Contains(m.levels, l) {
			return nil, fmt.Errorf("acr_levels/amr_levels name level %q, which module %q does not grant (levels: %s)", l, d.Name, strings.Join(m.levels, " "))
		}
	}
	return m, nil
}

// Brand is the provider's name and mark on the chooser.
func (m *Module) Brand() (string, string) { return m.label, m.mark }

// discover returns the provider's discovery, read at first use (a
// provider that is down when the server starts does not stop it) and
// kept once read.
func (m *Module) discover() (*gooidc.Provider, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.provider != nil {
		return m.provider, nil
	}
	if m.failure != nil && m.d.Now().Sub(m.failedAt) < discoveryRetry {
		return nil, m.failure
	}
	// Not the request's context: the provider keeps it to fetch its
	// keys later.
	ctx := gooidc.ClientContext(context.Background(), m.d.HTTP)
	p, err := gooidc.NewProvider(ctx, m.s.Issuer)
	if err != nil {
		m.failedAt = m.d.Now()
		m.failure = fmt.Errorf("oidc module %q: discovery at %s: %w", m.d.Name, m.s.Issuer, err)
		return nil, m.failure
	}
	m.provider = p
	return p, nil
}

func (m *Module) oauth(p *gooidc.Provider, callback string) *oauth2.Config {
	scopes := []string{gooidc.ScopeOpenID}
	want := m.s.Scopes
	if len(want) == 0 {
		want = []string{"email", "profile"}
	}
	for _, s := range want {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return &oauth2.Config{ClientID: m.s.ClientID, ClientSecret: m.s.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: callback, Scopes: scopes}
}

// Prompt is the button that leaves for the provider.
func (m *Module) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: web.Sprintf("Sign in with %s", m.label), Submit: web.Sprintf("Continue with %s", m.label), Step: chain.StepRedirect}, nil
}

// keep is what the callback needs: the nonce sent, the PKCE verifier,
// and the earliest authentication time the sign-in accepts.
type keep struct {
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Since    time.Time `json:"s,omitzero"`
}

// Redirect sends the browser to the provider's authorization endpoint.
func (m *Module) Redirect(ctx context.Context, a *chain.Attempt, state, callback string) (string, []byte, error) {
	p, err := m.discover()
	if err != nil {
		return "", nil, err
	}
	k := keep{Nonce: random(), Verifier: oauth2.GenerateVerifier(), Since: a.Req.Since}
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(k.Nonce), oauth2.S256ChallengeOption(k.Verifier)}
	if acr := m.upstreamACR(a.Req.AcrValues); len(acr) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(acr, " ")))
	}
	// A new authentication asked here is asked there too.
	if a.Req.ForceLogin {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	} else if !k.Since.IsZero() {
		age := max(int64(m.d.Now().Sub(k.Since)/time.Second), 0)
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.FormatInt(age, 10)))
	}
	b, _ := json.Marshal(k)
	return m.oauth(p, callback).AuthCodeURL(state, opts...), b, nil
}

// upstreamACR are the acr values to ask the provider for: those mapped
// to a level the sign-in asks for, in its order, then the configured
// ones.
func (m *Module) upstreamACR(want []string) []string {
	var out []string
	for _, level := range want {
		for remote, ls := range m.acrs {
			if slices.Contains(ls, level) && !slices.Contains(out, remote) {
				out = append(out, remote)
			}
		}
	}
	for _, v := range m.s.AcrValues {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Callback checks the provider's answer: the code exchanged with the
// PKCE verifier, the ID token verified (signature, issuer, audience,
// expiry, nonce, at_hash), the userinfo read for the same subject.
func (m *Module) Callback(ctx context.Context, a *chain.Attempt, r *http.Request, kept []byte) (chain.Identity, error) {
	q := r.Form
	if e := q.Get("error"); e != "" {
		if len(e) > 64 {
			e = e[:64]
		}
		return chain.Identity{}, chain.Reject(fmt.Sprintf("%s did not sign you in (%s).", m.label, e))
	}
	if iss := q.Get("iss"); iss != "" && iss != m.s.Issuer {
		// RFC 9207: the answer comes from another provider (a mix-up).
		return chain.Identity{}, chain.Reject("The answer did not come from " + m.label + ".")
	}
	var k keep
	if err := json.Unmarshal(kept, &k); err != nil || k.Nonce == "" || k.Verifier == "" {
		return chain.Identity{}, errors.New("oidc: the redirect's record is corrupt")
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		return chain.Identity{}, chain.Reject(m.label + " sent no sign-in code.")
	}
	p, err := m.discover()
	if err != nil {
		return chain.Identity{}, err
	}
	ctx = gooidc.ClientContext(ctx, m.d.HTTP)
	tok, err := m.oauth(p, m.d.CallbackURL).Exchange(ctx, code, oauth2.VerifierOption(k.Verifier))
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return chain.Identity{}, chain.Reject(m.label + " did not accept the sign-in (" + re.ErrorCode + ").")
	} else if err != nil {
		return chain.Identity{}, fmt.Errorf("oidc module %q: token request: %w", m.d.Name, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return chain.Identity{}, chain.Reject(m.label + " sent no ID token.")
	}
	idt, err := p.VerifierContext(ctx, &gooidc.Config{ClientID: m.s.ClientID, Now: m.d.Now}).Verify(ctx, raw)
	if err != nil {
		m.d.Logger.Warn("oidc: ID token refused", "error", err)
		return chain.Identity{}, chain.Reject("The sign-in at " + m.label + " could not be verified.")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(k.Nonce)) != 1 {
		return chain.Identity{}, chain.Reject("The sign-in at " + m.label + " was not made for this page.")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return chain.Identity{}, chain.Reject("The sign-in at " + m.label + " could not be verified.")
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return chain.Identity{}, chain.Reject("The sign-in at " + m.label + " could not be read.")
	}
	if !k.Since.IsZero() {
		at, ok := claims["auth_time"].(float64)
		if !ok || time.Unix(int64(at), 0).Before(k.Since.Add(-authTimeSkew).Truncate(time.Second)) {
			return chain.Identity{}, chain.Reject(m.label + " did not sign you in again, as this sign-in needs.")
		}
	}
	if p.UserInfoEndpoint() != "" && tok.AccessToken != "" {
		if err := m.userinfo(ctx, p, tok, idt.Subject, claims); err != nil {
			return chain.Identity{}, err
		}
	}
	return m.identity(ctx, idt.Issuer, claims)
}

// userinfo adds the userinfo's claims to those of the ID token (which
// win), for the same subject only.
func (m *Module) userinfo(ctx context.Context, p *gooidc.Provider, tok *oauth2.Token, sub string, claims map[string]any) error {
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return fmt.Errorf("oidc module %q: userinfo: %w", m.d.Name, err)
	}
	if ui.Subject != sub {
		return chain.Reject("The profile " + m.label + " sent is someone else's.")
	}
	var more map[string]any
	if err := ui.Claims(&more); err != nil {
		return chain.Reject(m.label + " sent a profile that cannot be read.")
	}
	for k, v := range more {
		if _, has := claims[k]; !has {
			claims[k] = v
		}
	}
	return nil
}

// identity maps verified claims to the identity the module passes with,
// after the allowed domains and groups.
func (m *Module) identity(ctx context.Context, issuer string, raw map[string]any) (chain.Identity, error) {
	c, err := m.mapping.claims(issuer, raw)
	if err != nil {
		m.d.Logger.Warn("oidc: claims refused", "error", err)
		return chain.Identity{}, chain.Reject(m.label + " sent a profile that cannot be used.")
	}
	if !m.domains.empty() && (!c.EmailVerified || !m.domains.admits(c.Email)) {
		return chain.Identity{}, chain.Reject("Your account at " + m.label + " may not sign in here (its address is not at an allowed domain).")
	}
	if len(m.s.AllowedGroups) > 0 && !anyIn(c.Groups, m.s.AllowedGroups) {
		return chain.Identity{}, chain.Reject("Your account at " + m.label + " may not sign in here (it is in no allowed group).")
	}
	c.Create = m.create
	acr, _ := raw["acr"].(string)
	amr, _ := stringList(raw["amr"], "amr")
	sid, _ := raw["sid"].(string)
	if sid != "" && len(sid) <= maxClaimLen {
		// The back-channel logout may name only the sid: remember whose.
		if err := m.d.Store.Set(ctx, sidKey(sid), []byte(c.Subject), sidTTL); err != nil {
			return chain.Identity{}, err
		}
	} else {
		sid = ""
	}
	return chain.Identity{Unlinked: &c, AMR: methods(amr), Levels: reached(m.levels, m.acrs, m.amrs, acr, amr), Ref: sid}, nil
}

func anyIn(have, allowed []string) bool {
	for _, g := range have {
		if slices.Contains(allowed, g) {
			return true
		}
	}
	return false
}

// sidTTL is how long the remote session of a sign-in is remembered, for
// a logout token that names only it: as long as a session may live.
const sidTTL = 31 * 24 * time.Hour

func sidKey(sid string) string {
	h := sha256.Sum256([]byte(sid))
	return "sid:" + hex.EncodeToString(h[:])
}

func random() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	_ chain.RedirectModule = (*Module)(nil)
	_ chain.Endpoints      = (*Module)(nil)
	_ chain.AccountModule  = (*Module)(nil)
	_ chain.Branded        = (*Module)(nil)
)
