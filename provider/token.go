package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

const (
	maxTokenRequestBytes = 64 << 10
	keyAccessToken       = "at:"
)

// accessToken is what an opaque access token stands for. Access tokens
// are random strings looked up in the store (not JWTs): they can be
// revoked at once, and they are only meant for our own userinfo endpoint.
type accessToken struct {
	ClientID string    `json:"client_id"`
	Subject  string    `json:"sub"`
	Scopes   []string  `json:"scopes"`
	SID      string    `json:"sid"`
	AuthTime time.Time `json:"auth_time"`
	ACR      string    `json:"acr,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	Levels   []string  `json:"levels,omitempty"`
	Expires  time.Time `json:"expires"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	IDToken     string `json:"id_token"`
	Scope       string `json:"scope"`
}

// token is the token endpoint (RFC 6749 §3.2, OIDC Core §3.1.3).
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, &oauthError{Code: "invalid_request", Description: "the token endpoint takes POST", status: http.StatusMethodNotAllowed})
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeJSONError(w, errInvalidRequest("the body must be application/x-www-form-urlencoded"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		writeJSONError(w, errInvalidRequest("the request body could not be read or is too large"))
		return
	}
	form := r.PostForm
	for k, vs := range form {
		if len(vs) > 1 {
			writeJSONError(w, errInvalidRequest("parameter "+k+" is repeated"))
			return
		}
	}
	client, oerr := p.authenticateClient(r, form)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		p.codeGrant(w, r, client, form)
	case "":
		writeJSONError(w, errInvalidRequest("grant_type is required"))
	default:
		writeJSONError(w, &oauthError{Code: "unsupported_grant_type", Description: "only authorization_code is supported", status: http.StatusBadRequest})
	}
}

// authenticateClient applies RFC 6749 §2.3: client_secret_basic,
// client_secret_post, or none for public clients.
func (p *Provider) authenticateClient(r *http.Request, form url.Values) (*Client, *oauthError) {
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
	// A secret is checked only when regulation allows: per client id and
	// per address, the same way for unknown ids.
	keys := []regulate.Key{regulate.Client(id), regulate.IP(ip)}
	if method != AuthNone && p.cfg.Regulate != nil {
		blocked, err := p.cfg.Regulate.Begin(ctx, keys...)
		if err != nil {
			p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
			return nil, errServer("could not check the client")
		}
		if blocked != nil {
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RateLimited, Client: id, IP: ip, Key: blocked.Key.String(), Reason: "token endpoint"})
			return nil, errSlowDown(blocked.RetryAfter)
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
	if p.cfg.Regulate != nil {
		if err := p.cfg.Regulate.Succeed(ctx, keys...); err != nil {
			p.cfg.Logger.Error("gatehouse provider: regulation", "error", err)
		}
	}
	return client, nil
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
			for _, k := range rec.AccessTokens {
				_ = p.cfg.Store.Delete(ctx, k)
			}
			p.cfg.Logger.Warn("gatehouse provider: authorization code replayed; its tokens are revoked", "client", client.ID, "sub", rec.Subject)
			p.cfg.Audit.Record(ctx, audit.Event{Event: audit.CodeReplayed, Client: client.ID, Subject: rec.Subject, SID: rec.SID,
				IP: regulate.ClientIP(r)})
			reject = errInvalidGrant("the code has already been used")
		}
		writeJSONError(w, reject)
	}

	// The access token's record is written before the code is marked
	// used, so that a replay found later can always revoke it: the code is
	// read and checked, the token written, and only then is the code
	// marked used (checked again, atomically). A token whose code could
	// not be marked is deleted again.
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

	at := randomToken()
	atKey := hashKey(keyAccessToken, at)
	tok := accessToken{
		ClientID: client.ID, Subject: rec.Subject, Scopes: rec.Scopes, SID: rec.SID,
		AuthTime: rec.AuthTime, ACR: rec.ACR, AMR: rec.AMR, Levels: rec.Levels,
		Expires: now.Add(p.cfg.AccessTokenTTL),
	}
	tb, _ := json.Marshal(tok)
	// Indexed by session before the session is checked: a logout that
	// removes the session after the check finds the token in the index.
	if err := p.cfg.Store.Apply(ctx, store.Put(atKey, tb, p.cfg.AccessTokenTTL), store.SetAdd(setTokensBySID+rec.SID, atKey)); err != nil {
		writeJSONError(w, errServer("could not store the access token"))
		return
	}
	issued := false
	defer func() {
		if !issued {
			_ = p.cfg.Store.Apply(context.WithoutCancel(ctx), store.Delete(atKey), store.SetRemove(setTokensBySID+rec.SID, atKey))
		}
	}()
	if _, err := p.cfg.Sessions.Get(ctx, rec.SID); errors.Is(err, session.ErrNoSession) {
		writeJSONError(w, errInvalidGrant("the sign-in session of this code has ended"))
		return
	} else if err != nil {
		writeJSONError(w, errServer("could not check the session"))
		return
	}

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
		rec.AccessTokens = append(rec.AccessTokens, atKey)
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

	user, err := p.cfg.Users.Get(ctx, rec.Subject)
	if errors.Is(err, users.ErrNotFound) || err == nil && user.Disabled {
		writeJSONError(w, errInvalidGrant("the user can no longer sign in"))
		return
	} else if err != nil {
		writeJSONError(w, errServer("could not load the user"))
		return
	}
	idToken, err := p.idToken(rec, user, at, now)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: signing ID token", "error", err)
		writeJSONError(w, errServer("could not sign the ID token"))
		return
	}
	issued = true
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(p.cfg.AccessTokenTTL / time.Second),
		IDToken: idToken, Scope: strings.Join(rec.Scopes, " "),
	})
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

// idToken mints the ID token (OIDC Core §2, §3.1.3.6).
func (p *Provider) idToken(rec codeRecord, user users.User, accessToken string, now time.Time) (string, error) {
	claims := map[string]any{
		"iss":       p.cfg.Issuer,
		"sub":       rec.Subject,
		"aud":       rec.ClientID,
		"azp":       rec.ClientID,
		"exp":       now.Add(p.cfg.IDTokenTTL).Unix(),
		"iat":       now.Unix(),
		"auth_time": rec.AuthTime.Unix(),
		"sid":       rec.SID,
		"at_hash":   leftHalfHash(accessToken),
	}
	if rec.Nonce != "" {
		claims["nonce"] = rec.Nonce
	}
	if rec.ACR != "" {
		claims["acr"] = rec.ACR
	}
	if len(rec.Levels) > 0 {
		claims["acr_levels"] = rec.Levels
	}
	if len(rec.AMR) > 0 {
		claims["amr"] = rec.AMR
	}
	for k, v := range scopeClaims(user, rec.Scopes) {
		claims[k] = v
	}
	signer, err := p.cfg.Keys.Signer("JWT")
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// leftHalfHash is at_hash for RS256 and ES256 (both SHA-256).
func leftHalfHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// scopeClaims are the user's standard claims the scopes grant
// (OIDC Core §5.4) plus groups.
func scopeClaims(u users.User, scopes []string) map[string]any {
	c := map[string]any{}
	if slices.Contains(scopes, "profile") {
		c["preferred_username"] = u.Username
		if u.Name != "" {
			c["name"] = u.Name
		}
		if u.GivenName != "" {
			c["given_name"] = u.GivenName
		}
		if u.FamilyName != "" {
			c["family_name"] = u.FamilyName
		}
		if !u.UpdatedAt.IsZero() {
			c["updated_at"] = u.UpdatedAt.Unix()
		}
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = u.EmailVerified
	}
	if slices.Contains(scopes, "groups") {
		c["groups"] = append([]string{}, u.Groups...)
	}
	return c
}
