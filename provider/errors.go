package provider

import (
	"encoding/json"

	"github.com/gatehouse-idp/gatehouse/web"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// oauthError is an OAuth 2.0 / OIDC error (RFC 6749 §4.1.2.1, §5.2;
// OIDC Core §3.1.2.6) carried as a value.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
	// wwwAuth, when set, is sent as WWW-Authenticate.
	wwwAuth string
	// retryAfter, when set, is sent as Retry-After (seconds).
	retryAfter int
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{Code: "invalid_request", Description: desc, status: http.StatusBadRequest}
}
func errInvalidGrant(desc string) *oauthError {
	return &oauthError{Code: "invalid_grant", Description: desc, status: http.StatusBadRequest}
}
func errInvalidClient(desc string, basic bool) *oauthError {
	e := &oauthError{Code: "invalid_client", Description: desc, status: http.StatusUnauthorized}
	if basic {
		e.wwwAuth = `Basic realm="gatehouse", charset="UTF-8"`
	}
	return e
}
func errInvalidToken(desc string) *oauthError {
	return &oauthError{Code: "invalid_token", Description: desc, status: http.StatusUnauthorized,
		wwwAuth: `Bearer error="invalid_token", error_description="` + desc + `"`}
}

// errSlowDown answers a client whose authentication attempts are
// delayed or banned: 429 with Retry-After; no secret was checked.
func errSlowDown(after time.Duration) *oauthError {
	secs := int((after + time.Second - 1) / time.Second)
	return &oauthError{Code: "invalid_client", Description: "too many failed attempts; retry later", status: http.StatusTooManyRequests,
		retryAfter: max(secs, 1)}
}

func errServer(desc string) *oauthError {
	return &oauthError{Code: "server_error", Description: desc, status: http.StatusInternalServerError}
}

// writeJSONError writes e as the JSON body RFC 6749 §5.2 specifies.
func writeJSONError(w http.ResponseWriter, e *oauthError) {
	if e.wwwAuth != "" {
		w.Header().Set("WWW-Authenticate", e.wwwAuth)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	noStore(w)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// redirectError sends the authorization error back to the client's
// redirect URI (only once that URI is known to be registered), the way
// the response would have gone.
func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, t target, e *oauthError) {
	q := url.Values{"error": {e.Code}}
	if e.Description != "" {
		q.Set("error_description", e.Description)
	}
	p.deliver(w, r, t, q)
}

// errorInterstitial shows an authorization error to the person, with a
// link on to the client's redirect URI (the error in it) that they may
// follow, instead of redirecting at once.
func (p *Provider) errorInterstitial(w http.ResponseWriter, r *http.Request, t target, e *oauthError, c *Client) {
	q := url.Values{"error": {e.Code}, "iss": {p.cfg.Issuer}}
	if e.Description != "" {
		q.Set("error_description", e.Description)
	}
	if t.State != "" {
		q.Set("state", t.State)
	}
	link := appendQuery(t.RedirectURI, q)
	if t.Mode == modeFragment {
		link = withFragment(t.RedirectURI, q)
	}
	noStore(w)
	web.Render(w, http.StatusBadRequest, "notice.html", web.Page{Title: "The application's request failed", Static: p.staticPath(),
		Message: e.Code + ": " + e.Description,
		Data: struct{ Text, Link, LinkText string }{
			web.Sprintf("%s sent a sign-in request that cannot be used. Go back to it only if you trust it:", c.DisplayName()),
			link, web.Sprintf("Back to %s", originOf(t.RedirectURI))}})
}

// noStore keeps a response that carries a code, a token or a session
// change out of every cache.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func appendQuery(u string, q url.Values) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	existing := pu.Query()
	for k, vs := range q {
		existing[k] = vs
	}
	pu.RawQuery = existing.Encode()
	return pu.String()
}

func jsonEncode(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }
