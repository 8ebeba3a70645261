package gate

import (
	"crypto/tls"
	"time"
)

// fakeTLS marks a forwarded request as HTTPS.
var fakeTLS = &tls.ConnectionState{}

// assertionLife is how long a signed identity assertion is valid; it is
// re-signed when less than a third is left, so signing is off the hot path.
const assertionLife = 5 * time.Minute

// assertion returns the signed JWT about s for the upstream of origin.
func (g *Gate) assertion(aud string, s *Session) (string, error) {
	e := g.cache.getID(s.ID)
	if e == nil {
		e = &entry{s: s}
	}
	e.amu.Lock()
	defer e.amu.Unlock()
	now := g.cfg.Now()
	if e.assertion != "" && e.assertionExp.Sub(now) > assertionLife/3 && e.s == s {
		return e.assertion, nil
	}
	claims := map[string]any{
		"iss": g.cfg.Issuer, "sub": s.Subject, "aud": aud, "iat": now.Unix(), "exp": now.Add(assertionLife).Unix(),
		"preferred_username": s.Username, "auth_time": s.AuthTime.Unix(),
	}
	if s.Email != "" {
		claims["email"] = s.Email
	}
	if s.Name != "" {
		claims["name"] = s.Name
	}
	if len(s.Groups) > 0 {
		claims["groups"] = s.Groups
	}
	if s.ACR != "" {
		claims["acr"] = s.ACR
	}
	if len(s.AMR) > 0 {
		claims["amr"] = s.AMR
	}
	tok, err := g.cfg.Sign(claims)
	if err != nil {
		return "", err
	}
	e.assertion, e.assertionExp = tok, now.Add(assertionLife)
	return tok, nil
}
