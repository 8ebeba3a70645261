package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// codeRecord is what an authorization code stands for.
type codeRecord struct {
	grant
	RedirectURI string    `json:"redirect_uri"`
	Nonce       string    `json:"nonce,omitempty"`
	Challenge   string    `json:"code_challenge,omitempty"`
	Expires     time.Time `json:"expires"`
	// Offline: offline_access was granted; the refresh family issued for
	// the code outlives the SSO session.
	Offline bool `json:"offline,omitempty"`
	Used    bool `json:"used,omitempty"`
	// AccessTokens and Family are the store keys of what was issued for
	// this code, so a replay can revoke them (RFC 6749 §4.1.2).
	AccessTokens []string `json:"access_tokens,omitempty"`
	Family       string   `json:"family,omitempty"`
}

// issued is what one token request handed out; revoke takes it back
// when the request fails after the writes.
type issued struct {
	access, accessKey string
	refresh, family   string
}

func (p *Provider) revokeIssued(ctx context.Context, is *issued) {
	ctx = context.WithoutCancel(ctx)
	if is.accessKey != "" {
		_ = p.cfg.Store.Delete(ctx, is.accessKey)
	}
	if is.family != "" {
		_ = p.tokens.revokeFamily(ctx, is.family)
	}
}

// codeGrant redeems an authorization code (RFC 6749 §4.1.3, OIDC Core
// §3.1.3).
func (p *Provider) codeGrant(w http.ResponseWriter, r *http.Request, client *Client, form url.Values) {
	ctx := r.Context()
	code := form.Get("code")
	if code == "" {
		writeJSONError(w, errInvalidRequest("code is required"))
		return
	}
	if v := form.Get("code_verifier"); v != "" && !pkceChallenge.MatchString(v) {
		writeJSONError(w, errInvalidRequest("code_verifier is malformed"))
		return
	}
	now := p.cfg.Sessions.Now()
	key := hashKey(keyCode, code)
	// check decides whether rec may be redeemed by this request.
	check := func(rec *codeRecord) (replay bool, reject *oauthError) {
		switch {
		case rec.ClientID != client.ID:
			return false, errInvalidGrant("the code was issued to another client")
		case rec.Used:
			return true, nil
		case now.After(rec.Expires):
			return false, errInvalidGrant("the code has expired")
		case form.Get("redirect_uri") != rec.RedirectURI:
			return false, errInvalidGrant("redirect_uri does not match the authorization request")
		}
		return false, checkPKCE(rec.Challenge, form.Get("code_verifier"))
	}
	refuse := func(rec *codeRecord, replay bool, reject *oauthError) {
		if replay {
			bg := context.WithoutCancel(ctx)
			for _, k := range rec.AccessTokens {
				_ = p.cfg.Store.Delete(bg, k)
			}
			if rec.Family != "" {
				_ = p.tokens.revokeFamily(bg, rec.Family)
			}
			p.cfg.Logger.Warn("gatehouse provider: authorization code replayed; its tokens are revoked", "client", client.ID, "sub", rec.Subject)
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.CodeReplayed, Client: client.ID, Subject: rec.Subject, SID: rec.SID,
				IP: regulate.ClientIP(r)})
			reject = errInvalidGrant("the code has already been used")
		} else if rec.ClientID != client.ID {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, Client: client.ID, IP: regulate.ClientIP(r), Reason: "code of client " + rec.ClientID})
		}
		writeJSONError(w, reject)
	}

	// What a code stands for is written as tokens before the code is
	// marked used, so that a replay found later can always revoke them:
	// the code is read and checked, the tokens written, and only then is
	// the code marked used (checked again, atomically). Tokens whose code
	// could not be marked are deleted again.
	var rec codeRecord
	b, err := p.cfg.Store.Get(ctx, key)
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if errors.Is(err, store.ErrNotFound) {
		writeJSONError(w, errInvalidGrant("the code is invalid or has expired"))
		return
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: redeeming code", "error", err)
		writeJSONError(w, errServer("could not redeem the code"))
		return
	}
	if replay, reject := check(&rec); replay || reject != nil {
		refuse(&rec, replay, reject)
		return
	}

	is, oerr := p.issueInSession(ctx, client, rec.grant, rec.Offline, "the sign-in session of this code has ended")
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	done := false
	defer func() {
		if !done {
			p.revokeIssued(ctx, is)
		}
	}()

	var replay bool
	var reject *oauthError
	// The record must outlive both the code (CodeTTL) and the window in
	// which a replay is still recognised.
	err = p.cfg.Store.Update(ctx, key, max(codeRecordTTL, p.cfg.CodeTTL), func(old []byte) ([]byte, error) {
		replay, reject = false, nil
		if old == nil {
			return nil, store.ErrNotFound
		}
		rec = codeRecord{}
		if err := json.Unmarshal(old, &rec); err != nil {
			return nil, err
		}
		if replay, reject = check(&rec); replay || reject != nil {
			return old, nil
		}
		rec.Used = true
		rec.AccessTokens = append(rec.AccessTokens, is.accessKey)
		rec.Family = is.family
		return json.Marshal(rec)
	})
	if errors.Is(err, store.ErrNotFound) {
		writeJSONError(w, errInvalidGrant("the code is invalid or has expired"))
		return
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: redeeming code", "error", err)
		writeJSONError(w, errServer("could not redeem the code"))
		return
	}
	if replay || reject != nil {
		refuse(&rec, replay, reject)
		return
	}
	user, oerr := p.grantUser(ctx, rec.Subject)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	done = p.writeUserTokens(ctx, w, client, &rec.grant, user, is, rec.Nonce)
}

// issueInSession writes the tokens for g, a grant made in an SSO
// session, and then checks that the session is still live: written
// first, they are in the session's index, so a logout that removes the
// session after the check finds them. When the session has ended,
// nothing stays issued and the answer is invalid_grant with ended.
func (p *Provider) issueInSession(ctx context.Context, client *Client, g grant, offline bool, ended string) (*issued, *oauthError) {
	is, oerr := p.issueTokens(ctx, client, g, offline)
	if oerr != nil {
		return nil, oerr
	}
	if _, err := p.cfg.Sessions.Get(ctx, g.SID); err != nil {
		p.revokeIssued(ctx, is)
		if errors.Is(err, session.ErrNoSession) {
			return nil, errInvalidGrant(ended)
		}
		return nil, errServer("could not check the session")
	}
	return is, nil
}

// writeUserTokens answers a token request for a person's grant g: the
// tokens in is, and an ID token when openid was granted. It reports
// whether the answer was the tokens (false: an error was written).
func (p *Provider) writeUserTokens(ctx context.Context, w http.ResponseWriter, client *Client, g *grant, user users.User, is *issued, nonce string) bool {
	var idToken string
	if hasScope(g.Scopes, "openid") {
		var err error
		if idToken, err = p.idToken(ctx, client, g, user, idTokenExtras{Nonce: nonce, AccessToken: is.access}); err != nil {
			p.cfg.Logger.Error("gatehouse provider: signing ID token", "error", err)
			writeJSONError(w, errServer("could not sign the ID token"))
			return false
		}
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: is.access, TokenType: "Bearer", ExpiresIn: expiresIn(p.cfg.AccessTokenTTL),
		RefreshToken: is.refresh, IDToken: idToken, Scope: scopesString(g.Scopes),
	})
	return true
}

// issueTokens writes an access token for g and, when the client may
// refresh, a new refresh family holding it: online (it dies with the SSO
// session) or, when offline_access was granted, offline.
func (p *Provider) issueTokens(ctx context.Context, client *Client, g grant, offline bool) (*issued, *oauthError) {
	var is issued
	var err error
	at := accessToken{grant: g}
	if client.Allows(GrantRefreshToken) {
		f := family{grant: g, Offline: offline, Absolute: p.cfg.Sessions.Now().Add(p.cfg.RefreshTokenLifetime)}
		is.refresh, is.access, is.accessKey, err = p.tokens.newFamily(ctx, &f, p.cfg.RefreshTokenIdle, at, p.cfg.AccessTokenTTL)
		is.family = f.ID
	} else {
		is.access, is.accessKey, err = p.tokens.issueAccess(ctx, at, p.cfg.AccessTokenTTL)
	}
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: issuing tokens", "error", err)
		return nil, errServer("could not store the tokens")
	}
	return &is, nil
}

// grantUser loads the user a grant is for, refusing one who can no
// longer sign in (a federated account is checked with its user source).
func (p *Provider) grantUser(ctx context.Context, sub string) (users.User, *oauthError) {
	user, err := p.cfg.Users.Current(ctx, sub)
	if errors.Is(err, users.ErrNotFound) || err == nil && user.Disabled {
		return users.User{}, errInvalidGrant("the user can no longer sign in")
	} else if err != nil {
		p.cfg.Logger.Error("gatehouse provider: loading user", "error", err)
		return users.User{}, errServer("could not load the user")
	}
	return user, nil
}

// checkPKCE verifies verifier against an S256 challenge (RFC 7636 §4.6).
// A verifier without a challenge is refused too: it would let a
// downgrade go unnoticed.
func checkPKCE(challenge, verifier string) *oauthError {
	switch {
	case challenge == "" && verifier == "":
		return nil
	case challenge == "":
		return errInvalidGrant("code_verifier sent but the authorization request had no code_challenge")
	case verifier == "":
		return errInvalidGrant("code_verifier is required")
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) != 1 {
		return errInvalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}
