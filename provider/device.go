package provider

import (
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// The OAuth 2.0 Device Authorization Grant (RFC 8628), for devices that
// cannot show a browser or take typing well (CLIs, TVs): the device asks
// for a device code and a user code, shows the user code, and polls the
// token endpoint while the person types the code at the verification
// page on another device, signs in and allows it.

// Paths of the device authorization endpoint and the verification page.
const (
	PathDeviceAuthorization = "/device_authorization"
	PathDevice              = "/device"
)

// User codes (RFC 8628 §6.1): 8 letters of an alphabet without vowels
// (no words) and without look-alikes, about 34.5 bits, shown XXXX-XXXX.
// Typed in any case, with or without the dash or spaces. Guessing at
// the verification page is regulated by address.
const (
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
	maxUserCodeInput = 64
)

// Device authorization requests an address may make in a window: each
// stores a record, and a public client's requests need no secret.
const (
	maxDeviceRequests   = 60
	deviceRequestWindow = 10 * time.Minute
)

// deviceAuthResponse is the device authorization response (RFC 8628
// §3.2).
type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// deviceAuthorization is the device authorization endpoint (RFC 8628
// §3.1): client authentication as at the token endpoint (a public
// client sends its client_id only), a client allowed the device_code
// grant, scopes filtered as at the authorization endpoint.
func (p *Provider) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	form, oerr := p.readTokenForm(w, r, "the device authorization endpoint")
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	client, oerr := p.authenticateClient(r, form)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	if !client.Allows(GrantDeviceCode) {
		writeJSONError(w, &oauthError{Code: "unauthorized_client", Description: "this client may not use the device_code grant", status: http.StatusBadRequest})
		return
	}
	if len(form.Get("scope")) > paramLimits["scope"] {
		writeJSONError(w, errInvalidRequest("scope is too long"))
		return
	}
	ctx := r.Context()
	ip := regulate.ClientIP(r)
	wait, err := p.tokens.countRequest(ctx, keyDeviceRate+regulate.IP(ip).Value, maxDeviceRequests, deviceRequestWindow)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: device authorization", "error", err)
		writeJSONError(w, errServer("could not start the device authorization"))
		return
	}
	if wait > 0 {
		p.cfg.Audit.Record(ctx, audit.Event{Event: audit.RateLimited, Client: client.ID, IP: ip, Reason: "device authorization"})
		e := &oauthError{Code: "slow_down", Description: "too many device authorization requests from this address; retry later",
			status: http.StatusTooManyRequests, retryAfter: int((wait + time.Second - 1) / time.Second)}
		writeJSONError(w, e)
		return
	}
	scopes := p.deviceScopes(client, form.Get("scope"))
	rec := deviceRecord{grant: grant{ClientID: client.ID, Scopes: scopes},
		Interval: int64(p.cfg.DevicePollInterval / time.Second), Offline: hasScope(scopes, "offline_access")}
	code, uc, err := p.tokens.newDevice(ctx, &rec, p.cfg.DeviceCodeTTL)
	if err != nil {
		p.cfg.Logger.Error("gatehouse provider: device authorization", "error", err)
		writeJSONError(w, errServer("could not store the device code"))
		return
	}
	verify := p.Endpoint(PathDevice)
	writeJSON(w, http.StatusOK, deviceAuthResponse{
		DeviceCode: code, UserCode: formatUserCode(uc),
		VerificationURI: verify, VerificationURIComplete: verify + "?user_code=" + formatUserCode(uc),
		ExpiresIn: expiresIn(p.cfg.DeviceCodeTTL), Interval: rec.Interval,
	})
}

// deviceScopes keeps the requested scopes the client may have (openid
// always), once each; offline_access only for a client that may refresh.
func (p *Provider) deviceScopes(client *Client, raw string) []string {
	allowed := p.allowedScopes(client)
	var out []string
	for _, s := range strings.Fields(raw) {
		if s == "offline_access" && !client.Allows(GrantRefreshToken) {
			continue
		}
		if (s == "openid" || slices.Contains(allowed, s)) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// newUserCode draws a user code uniformly from the alphabet.
func newUserCode() string {
	const limit = 256 - 256%len(userCodeAlphabet) // no modulo bias
	out := make([]byte, 0, userCodeLength)
	var buf [16]byte
	for len(out) < userCodeLength {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < userCodeLength {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out)
}

// normalizeUserCode reads a user code as a person typed it: ASCII
// letters in either case, dashes and spaces ignored. Anything else, or
// not exactly 8 letters of the alphabet, is not a user code.
func normalizeUserCode(s string) (string, bool) {
	if len(s) > maxUserCodeInput {
		return "", false
	}
	out := make([]byte, 0, userCodeLength)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ' || c == '\t':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		if strings.IndexByte(userCodeAlphabet, c) < 0 || len(out) == userCodeLength {
			return "", false
		}
		out = append(out, c)
	}
	if len(out) != userCodeLength {
		return "", false
	}
	return string(out), true
}

// formatUserCode shows a normalised user code as XXXX-XXXX.
func formatUserCode(uc string) string {
	if len(uc) != userCodeLength {
		return uc
	}
	return uc[:4] + "-" + uc[4:]
}
