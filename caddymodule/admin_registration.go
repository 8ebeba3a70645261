package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/provider"
)

// registrationTokenRequest asks for an initial access token of dynamic
// client registration: good for Uses registrations (default 1) within
// TTL (default 24h).
type registrationTokenRequest struct {
	TTL  caddy.Duration `json:"ttl,omitempty"`
	Uses int            `json:"uses,omitempty"`
}

// registrationToken is the token, shown once (only its hash is kept).
type registrationToken struct {
	Token                string    `json:"initial_access_token"`
	Expires              time.Time `json:"expires_at"`
	Uses                 int       `json:"uses"`
	Policy               string    `json:"registration_policy"`
	RegistrationEndpoint string    `json:"registration_endpoint"`
}

func createRegistrationToken(a *App, w http.ResponseWriter, r *http.Request) error {
	var req registrationTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ttl, uses := time.Duration(req.TTL), req.Uses
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	if uses == 0 {
		uses = 1
	}
	setAdminTarget(r, "registration initial access token")
	tok, exp, err := a.provider.NewInitialAccessToken(r.Context(), ttl, uses)
	if err != nil {
		return badRequest("%v", err)
	}
	writeAdminJSON(w, http.StatusCreated, registrationToken{Token: tok, Expires: exp, Uses: uses,
		Policy: a.provider.RegistrationPolicy(), RegistrationEndpoint: a.provider.Endpoint(provider.PathRegister)})
	return nil
}
