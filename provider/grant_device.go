package provider

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// maxDeviceCodeBytes bounds a device code presented at the token
// endpoint (ours are 43 characters).
const maxDeviceCodeBytes = 512

// deviceGrant is the device's poll of the token endpoint (RFC 8628
// §3.4, §3.5). The device code is bound to the client that asked for it
// and is redeemed once; a second redemption revokes what the first got.
// Tokens are issued as for an authorization code: an access token, a
// refresh token when the client may refresh (offline only with
// offline_access), an ID token when openid was granted.
func (p *Provider) deviceGrant(w http.ResponseWriter, r *http.Request, client *Client, form url.Values) {
	ctx := r.Context()
	code := form.Get("device_code")
	if code == "" {
		writeJSONError(w, errInvalidRequest("device_code is required"))
		return
	}
	if len(code) > maxDeviceCodeBytes {
		writeJSONError(w, errInvalidGrant("the device code is invalid or has expired"))
		return
	}
	key := hashKey(keyDevice, code)
	rec, err := p.tokens.pollDevice(ctx, key, client.ID)
	if err != nil {
		p.devicePollRefused(w, r, client, rec, err)
		return
	}

	// As for a code: the tokens are written before the code is marked
	// used, so that a replay found later can always revoke them.
	is, oerr := p.issueInSession(ctx, client, rec.grant, rec.Offline, "the sign-in session in which the device was allowed has ended")
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
	if rec, err = p.tokens.redeemDevice(ctx, key, client.ID, is.accessKey, is.family); err != nil {
		p.devicePollRefused(w, r, client, rec, err)
		return
	}
	user, oerr := p.grantUser(ctx, rec.Subject)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	done = p.writeUserTokens(ctx, w, client, &rec.grant, user, is, "")
}

// devicePollRefused answers a poll that gets no tokens (RFC 8628 §3.5).
func (p *Provider) devicePollRefused(w http.ResponseWriter, r *http.Request, client *Client, rec *deviceRecord, err error) {
	ctx := r.Context()
	answer := func(code, desc string) {
		writeJSONError(w, &oauthError{Code: code, Description: desc, status: http.StatusBadRequest})
	}
	switch {
	case errors.Is(err, errDevicePending):
		answer("authorization_pending", "the person has not yet allowed or denied the device")
	case errors.Is(err, errDeviceSlowDown):
		answer("slow_down", "polling too fast: wait at least "+strconv.FormatInt(rec.Interval, 10)+" seconds between polls")
	case errors.Is(err, errDeviceDenied):
		answer("access_denied", "the person denied the device")
	case errors.Is(err, errDeviceExpired):
		answer("expired_token", "the device code has expired; start again")
	case errors.Is(err, errDeviceUnknown):
		answer("invalid_grant", "the device code is invalid or has expired")
	case errors.Is(err, errDeviceClient):
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.TokenMisuse, Client: client.ID, IP: regulate.ClientIP(r), Reason: "device code of client " + rec.ClientID})
		answer("invalid_grant", "the device code was issued to another client")
	case errors.Is(err, errDeviceRedeemed):
		p.tokens.revokeRedeemed(ctx, rec)
		p.cfg.Logger.Warn("gatehouse provider: device code replayed; its tokens are revoked", "client", client.ID, "sub", rec.Subject)
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.CodeReplayed, Client: client.ID, Subject: rec.Subject, SID: rec.SID,
			IP: regulate.ClientIP(r), Reason: "device code"})
		answer("invalid_grant", "the device code has already been used")
	default:
		p.cfg.Logger.Error("gatehouse provider: polling device code", "error", err)
		writeJSONError(w, errServer("could not check the device code"))
	}
}
