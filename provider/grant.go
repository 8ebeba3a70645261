package provider

import "time"

// grant is what a user (or, for client_credentials, a client on its own
// behalf) granted a client. Codes, access tokens and refresh families
// each carry one: what the token stands for travels unchanged from the
// authorization to every token issued for it.
type grant struct {
	ClientID string   `json:"client_id"`
	Subject  string   `json:"sub"`
	Scopes   []string `json:"scopes"`
	// SID is the SSO session the grant was made in ("" for a client on
	// its own behalf).
	SID      string    `json:"sid,omitempty"`
	AuthTime time.Time `json:"auth_time,omitzero"`
	ACR      string    `json:"acr,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	Levels   []string  `json:"levels,omitempty"`
	// Claims is what the claims request parameter asked for (OIDC Core
	// §5.5): released at the ID token and at userinfo besides the
	// scopes' claims.
	Claims *claimsRequest `json:"claims,omitempty"`
}

// user reports whether the grant is a person's (not a client acting on
// its own behalf).
func (g *grant) user() bool { return g.Subject != "" && g.SID != "" }
