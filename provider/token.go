package provider

import (
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"
)

const maxTokenRequestBytes = 64 << 10

// Grant types (RFC 6749 §4, RFC 8628 §3.4).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
)

// tokenResponse is the token endpoint's answer (RFC 6749 §5.1, OIDC Core
// §3.1.3.3).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope"`
}

// token is the token endpoint (RFC 6749 §3.2, OIDC Core §3.1.3).
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	form, oerr := p.readTokenForm(w, r, "the token endpoint")
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	gt := form.Get("grant_type")
	if gt == "" {
		writeJSONError(w, errInvalidRequest("grant_type is required"))
		return
	}
	handler, known := map[string]func(http.ResponseWriter, *http.Request, *Client, url.Values){
		GrantAuthorizationCode: p.codeGrant,
		GrantRefreshToken:      p.refreshGrant,
		GrantClientCredentials: p.clientCredentialsGrant,
		GrantDeviceCode:        p.deviceGrant,
	}[gt]
	if !known {
		writeJSONError(w, &oauthError{Code: "unsupported_grant_type", Description: "grant_type " + gt + " is not supported", status: http.StatusBadRequest})
		return
	}
	client, oerr := p.authenticateClient(r, form)
	if oerr != nil {
		writeJSONError(w, oerr)
		return
	}
	if !slices.Contains(client.AllowedGrantTypes(), gt) {
		writeJSONError(w, &oauthError{Code: "unauthorized_client", Description: "this client may not use the " + gt + " grant", status: http.StatusBadRequest})
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	handler(sw, r, client, form)
	if sw.status == http.StatusOK {
		p.cfg.Metrics.Grant(gt)
	}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// readTokenForm reads the form of a back-channel POST endpoint (token,
// introspection, revocation): POST, form-encoded, bounded, no parameter
// repeated (RFC 6749 §3.2).
func (p *Provider) readTokenForm(w http.ResponseWriter, r *http.Request, what string) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, &oauthError{Code: "invalid_request", Description: what + " takes POST", status: http.StatusMethodNotAllowed}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("the request body could not be read or is too large")
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 {
			return nil, errInvalidRequest("parameter " + k + " is repeated")
		}
	}
	return r.PostForm, nil
}

// expiresIn is a TTL in whole seconds, as token responses give it.
func expiresIn(d time.Duration) int64 { return int64(d / time.Second) }
