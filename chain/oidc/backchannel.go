package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// BackchannelPath is the endpoint (below the module's base,
// LoginPath/m/<name>/) where the provider posts logout tokens; register
// <issuer origin><login path>/m/<name>/backchannel_logout there.
const BackchannelPath = "backchannel_logout"

// Bounds of a logout token's time claims (Back-Channel Logout 1.0 §2.6:
// the RP may refuse tokens issued too far in the past).
const (
	logoutTokenMaxAge = 10 * time.Minute
	logoutTokenSkew   = 2 * time.Minute
	// jtiTTL outlives every token that is not too old.
	jtiTTL      = logoutTokenMaxAge + 2*logoutTokenSkew
	maxLogoutJW = 16 << 10
)

// Endpoint serves the module's back-channel logout endpoint.
func (m *Module) Endpoint(path string) http.Handler {
	if path != BackchannelPath {
		return nil
	}
	return http.HandlerFunc(m.backchannel)
}

// backchannel receives a logout token (§2.5–2.8): verified with the
// provider's keys, for this client, fresh, used once; then the local
// sessions that came from the remote session (sid) or, with only sub,
// every session that came through this module for that person, end.
func (m *Module) backchannel(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		backchannelError(w, http.StatusMethodNotAllowed, "logout tokens are posted")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutJW+1024)
	ctx := r.Context()
	var sub, sid string
	err := r.ParseForm()
	if err == nil {
		sub, sid, err = m.verifyLogout(ctx, r.PostForm.Get("logout_token"))
	}
	var down unavailable
	if errors.As(err, &down) {
		m.d.Logger.Error("oidc: back-channel logout", "error", err)
		backchannelError(w, http.StatusServiceUnavailable, "the logout could not be checked now")
		return
	}
	if err != nil {
		m.d.Audit.Record(ctx, audit.Event{Event: audit.LogoutTokenRefused, Module: m.d.Name, Reason: err.Error()})
		backchannelError(w, http.StatusBadRequest, "the logout token is not valid")
		return
	}
	n, err := m.endSessions(ctx, sub, sid)
	if err != nil {
		m.d.Logger.Error("oidc: back-channel logout", "error", err)
		// 5xx: the provider may retry (a replay of its jti is then
		// refused, but the sessions it could end are ended already).
		backchannelError(w, http.StatusServiceUnavailable, "the logout could not be completed")
		return
	}
	m.d.Audit.Record(ctx, audit.Event{Event: audit.UpstreamLogout, Module: m.d.Name, Target: m.s.Issuer + " " + sub,
		Reason: strconv.Itoa(n) + " session(s) ended"})
	w.WriteHeader(http.StatusOK)
}

func backchannelError(w http.ResponseWriter, status int, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	code := "invalid_request"
	if status >= 500 {
		code = "temporarily_unavailable"
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// verifyLogout checks a logout token and spends its jti; it returns the
// remote subject (looked up by sid when the token names only that) and
// the sid.
func (m *Module) verifyLogout(ctx context.Context, raw string) (sub, sid string, err error) {
	if raw == "" || len(raw) > maxLogoutJW {
		return "", "", errors.New("no logout token, or an oversized one")
	}
	// Token confusion: an ID token (typ JWT) is no logout token.
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA})
	if err != nil || len(jws.Signatures) != 1 {
		return "", "", errors.New("not a signed JWT")
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != "" &&
		!strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "logout+jwt") {
		return "", "", fmt.Errorf("typ %q is not logout+jwt", typ)
	}
	p, err := m.discover()
	if err != nil {
		return "", "", unavailable{err}
	}
	ctx = gooidc.ClientContext(ctx, m.d.HTTP)
	lt, err := p.VerifierContext(ctx, &gooidc.Config{ClientID: m.s.ClientID, Now: m.d.Now}).VerifyLogout(ctx, raw)
	if err != nil {
		return "", "", err
	}
	now := m.d.Now()
	switch {
	case lt.IssuedAt.IsZero():
		return "", "", errors.New("no iat")
	case lt.IssuedAt.After(now.Add(logoutTokenSkew)):
		return "", "", errors.New("iat in the future")
	case lt.IssuedAt.Before(now.Add(-logoutTokenMaxAge)):
		return "", "", errors.New("issued too long ago")
	}
	var ev struct {
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := lt.Claims(&ev); err != nil || !jsonObject(ev.Events[logout.BackchannelEvent]) {
		return "", "", errors.New("the events claim is no back-channel logout event")
	}
	h := sha256.Sum256([]byte(lt.TokenID))
	if err := m.d.Store.Create(ctx, "jti:"+hex.EncodeToString(h[:]), []byte{1}, jtiTTL); errors.Is(err, store.ErrExists) {
		return "", "", errors.New("jti replayed")
	} else if err != nil {
		return "", "", unavailable{err}
	}
	sub, sid = lt.Subject, lt.SessionID
	if sub == "" {
		b, err := m.d.Store.Get(ctx, sidKey(sid))
		if errors.Is(err, store.ErrNotFound) {
			return "", sid, nil // no sign-in here came from that session
		} else if err != nil {
			return "", "", unavailable{err}
		}
		sub = string(b)
	}
	return sub, sid, nil
}

// unavailable is a failure to check a logout token that is not the
// token's (the provider's keys or the store out of reach): the provider
// is told to try again (5xx), and nothing is audited as refused.
type unavailable struct{ error }

func (u unavailable) Unwrap() error { return u.error }

func jsonObject(b json.RawMessage) bool {
	var v map[string]any
	return len(b) > 0 && json.Unmarshal(b, &v) == nil && v != nil
}

// endSessions ends the local sessions of the account linked to the
// remote subject that came through this module: those of remote session
// sid, or with none named every one (unless logout_every is false).
func (m *Module) endSessions(ctx context.Context, sub, sid string) (int, error) {
	if sub == "" || (sid == "" && m.s.LogoutEvery != nil && !*m.s.LogoutEvery) {
		return 0, nil
	}
	u, err := m.d.Users.LookupRemote(ctx, m.s.Issuer, sub)
	if errors.Is(err, users.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return m.d.Sessions.EndPassed(ctx, u.Subject, sid, logout.Upstream)
}
