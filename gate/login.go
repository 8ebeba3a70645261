package gate

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/web"
)

// pending is a login in flight. It is not stored: it travels sealed in a
// cookie named after the login's state, so an unauthenticated request
// writes nothing, and it is bound to the browser and the origin.
type pending struct {
	State    string        `json:"s"`
	Browser  string        `json:"b"`
	Origin   string        `json:"o"`
	ReturnTo string        `json:"r"`
	WasPost  bool          `json:"p,omitempty"`
	Nonce    string        `json:"n"`
	Verifier string        `json:"v"`
	ACR      []string      `json:"acr,omitempty"`
	MaxAge   time.Duration `json:"ma,omitempty"`
}

const (
	pendingTTL     = 15 * time.Minute
	purposePending = "gate-login"
	keySession     = "gs:"
	setBySID       = "gs-sid:"
	setBySubject   = "gs-sub:"
)

// pendingCookie is the cookie of the login with this state. It is sent
// only to the callback, not to the upstream with every request.
func (g *Gate) pendingCookie(state string) string {
	if len(state) > 12 {
		state = state[:12]
	}
	return g.cfg.Cookies.PathName("gl-" + state)
}

// maxPendingReturn bounds the return address kept in a pending login's
// cookie (a longer one returns to the site's root), so the cookies of
// logins in several tabs stay small.
const maxPendingReturn = 1024

// callbackURL is the redirect URI of an origin.
func callbackURL(origin string) string { return origin + PathCallback }

// startLogin sends a browser to the provider, or tells an API client 401.
func (g *Gate) startLogin(w http.ResponseWriter, r, orig *http.Request, b *bound, origin string, policy Policy) {
	ret := orig.URL.RequestURI()
	if _, ok := SafeReturn(ret); !ok {
		ret = "/"
	}
	loginURL := origin + PathLogin + "?return=" + url.QueryEscape(ret)
	if !isNavigation(orig) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Gatehouse realm=%q, login_url=%q`, hostOf(origin), loginURL))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "login_required", "login_url": loginURL})
		return
	}
	p := pending{ReturnTo: ret, WasPost: orig.Method != http.MethodGet && orig.Method != http.MethodHead,
		ACR: policy.ACR, MaxAge: policy.MaxAge}
	g.redirectToProvider(w, orig, origin, p)
}

// redirectToProvider starts the authorization code flow (PKCE S256,
// state and nonce bound to this browser) for origin's callback, which
// was registered from the configuration.
func (g *Gate) redirectToProvider(w http.ResponseWriter, r *http.Request, origin string, p pending) {
	prov, err := g.oidcProvider(r.Context())
	if err != nil {
		g.cfg.Logger.Error("gatehouse gate: provider discovery", "issuer", g.cfg.Issuer, "error", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable",
			"The sign-in service cannot be reached right now. Please try again in a moment.")
		return
	}
	if len(p.ReturnTo) > maxPendingReturn {
		p.ReturnTo = "/"
	}
	p.State = randomString(24)
	p.Browser = g.cfg.Cookies.BrowserID(w, r)
	p.Origin = origin
	p.Nonce = randomString(24)
	p.Verifier = oauth2.GenerateVerifier()
	sealed, err := g.cfg.Cookies.Seal(purposePending, p, pendingTTL)
	if err != nil {
		g.page(w, http.StatusInternalServerError, "Sign-in failed", "The sign-in could not be started.")
		return
	}
	g.cfg.Cookies.SetPathCookie(w, g.pendingCookie(p.State), PathCallback, sealed, pendingTTL)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.Verifier), oidc.Nonce(p.Nonce)}
	if len(p.ACR) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(p.ACR, " ")))
	}
	if p.MaxAge > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(int(p.MaxAge/time.Second))))
	}
	noStore(w)
	http.Redirect(w, r, g.oauth2Config(prov, callbackURL(origin)).AuthCodeURL(p.State, opts...), http.StatusFound)
}

func (g *Gate) oauth2Config(prov *oidc.Provider, redirect string) *oauth2.Config {
	ep := prov.Endpoint()
	if g.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: g.cfg.ClientID, ClientSecret: g.cfg.ClientSecret, Endpoint: ep, RedirectURL: redirect, Scopes: g.cfg.Scopes}
}

// oidcProvider discovers the provider once it is reachable.
func (g *Gate) oidcProvider(ctx context.Context) (*oidc.Provider, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.provider != nil {
		return g.provider, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), g.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, g.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&extra)
	g.provider, g.endSess = p, extra.EndSession
	g.verifier = p.Verifier(&oidc.Config{ClientID: g.cfg.ClientID, Now: g.cfg.Now})
	return p, nil
}

func (g *Gate) callback(w http.ResponseWriter, r *http.Request, b *bound, origin string) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 128 {
		g.page(w, http.StatusBadRequest, "Sign-in link not valid", "This page is only reached by returning from the sign-in service.")
		return
	}
	var p pending
	name := g.pendingCookie(state)
	ck, err := r.Cookie(name)
	if err != nil || g.cfg.Cookies.Open(purposePending, ck.Value, &p) != nil ||
		subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		g.retryPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in has expired, was already completed, or was started in another browser.", "/")
		return
	}
	g.cfg.Cookies.SetPathCookie(w, name, PathCallback, "", -1) // one use
	if p.Origin != origin || subtle.ConstantTimeCompare([]byte(p.Browser), []byte(g.cfg.Cookies.BrowserID(w, r))) != 1 {
		g.retryPage(w, http.StatusBadRequest, "Sign-in started elsewhere", "This sign-in was started in another browser or on another site.", "/")
		return
	}
	if iss := q.Get("iss"); iss != "" && iss != g.cfg.Issuer {
		g.page(w, http.StatusBadRequest, "Sign-in failed", "The answer came from an unexpected sign-in service.")
		return
	}
	if e := q.Get("error"); e != "" {
		g.retryPage(w, http.StatusForbidden, "Sign-in not completed", web.Sprintf("The sign-in service answered: %s.", e), p.ReturnTo)
		return
	}
	prov, err := g.oidcProvider(ctx)
	if err != nil {
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "Please try again in a moment.")
		return
	}
	octx := oidc.ClientContext(ctx, g.cfg.HTTPClient)
	tok, err := g.oauth2Config(prov, callbackURL(origin)).Exchange(octx, q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		g.cfg.Logger.Warn("gatehouse gate: code exchange failed", "error", err)
		g.retryPage(w, http.StatusBadGateway, "Sign-in failed", "The sign-in could not be completed.", p.ReturnTo)
		return
	}
	s, err := g.sessionFromToken(octx, tok, p.Nonce)
	if err != nil {
		g.cfg.Logger.Warn("gatehouse gate: ID token rejected", "error", err)
		g.retryPage(w, http.StatusBadGateway, "Sign-in failed", "The sign-in service's answer could not be verified.", p.ReturnTo)
		return
	}
	// What the gate asked for is checked on what came back: a tampered
	// authorization request cannot lower the level or the freshness.
	if len(p.ACR) > 0 && !slices.ContainsFunc(p.ACR, func(l string) bool { return slices.Contains(s.Levels, l) }) {
		g.page(w, http.StatusForbidden, "Stronger sign-in needed",
			web.Sprintf("This page needs a stronger sign-in (level %s) than your account could complete.", strings.Join(p.ACR, " / ")))
		return
	}
	if p.MaxAge > 0 && g.cfg.Now().Sub(s.AuthTime) > p.MaxAge {
		g.retryPage(w, http.StatusForbidden, "A fresh sign-in is needed", "This page needs you to have signed in recently.", p.ReturnTo)
		return
	}
	s.Origin, s.UpstreamLogout = origin, b.UpstreamLogout
	if old := g.cookies.decode(r, origin); old != "" {
		// The same person signing in again here: the old session is
		// replaced, not logged out (no upstream notice).
		g.forget(ctx, old)
	}
	if err := g.save(ctx, s); errors.Is(err, store.ErrExists) {
		g.retryPage(w, http.StatusForbidden, "Your sign-in has ended", "Your session ended while you were signing in.", p.ReturnTo)
		return
	} else if err != nil {
		g.cfg.Logger.Error("gatehouse gate: saving session", "error", err)
		g.page(w, http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "Please try again in a moment.")
		return
	}
	g.cookies.set(w, origin, s.ID, g.cfg.SessionLifetime)
	if p.WasPost {
		g.notice(w, http.StatusOK, "Signed in — please submit again",
			"You had to sign in while sending a form, so it was not sent. Go back to the page and submit it again.",
			p.ReturnTo, "Back to the page")
		return
	}
	noStore(w)
	http.Redirect(w, r, safeOrRoot(p.ReturnTo), http.StatusSeeOther)
}

// noStore keeps a response that sets or clears a session out of caches.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

// sessionFromToken verifies the ID token and builds a session from it.
func (g *Gate) sessionFromToken(ctx context.Context, tok *oauth2.Token, nonce string) (*Session, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("no id_token in the token response")
	}
	idt, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("nonce does not match")
	}
	var c struct {
		SID       string   `json:"sid"`
		Username  string   `json:"preferred_username"`
		Email     string   `json:"email"`
		Name      string   `json:"name"`
		Groups    []string `json:"groups"`
		ACR       string   `json:"acr"`
		ACRLevels []string `json:"acr_levels"`
		AMR       []string `json:"amr"`
		AuthTime  int64    `json:"auth_time"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, err
	}
	now := g.cfg.Now()
	s := &Session{
		ID: randomString(32), Subject: idt.Subject, SID: c.SID, Username: c.Username, Email: c.Email, Name: c.Name,
		Groups: c.Groups, ACR: c.ACR, Levels: c.ACRLevels, AMR: c.AMR, AuthTime: time.Unix(c.AuthTime, 0),
		Created: now, Expires: now.Add(g.cfg.SessionLifetime),
	}
	if s.Username == "" {
		s.Username = idt.Subject
	}
	s.IDToken = raw
	if len(s.Levels) == 0 && s.ACR != "" {
		s.Levels = []string{s.ACR}
	}
	if c.AuthTime == 0 {
		s.AuthTime = idt.IssuedAt
	}
	return s, nil
}
