package provider

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"maps"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/users"
)

// idTokenExtras are the parts of an ID token that depend on the response
// it travels in.
type idTokenExtras struct {
	Nonce string
	// AccessToken and Code, when issued with the ID token, are bound to it
	// by at_hash and c_hash (OIDC Core §3.3.2.11).
	AccessToken, Code string
}

// idToken mints the ID token (OIDC Core §2, §3.1.3.6, §3.3.2.11).
func (p *Provider) idToken(ctx context.Context, client *Client, g *grant, user users.User, x idTokenExtras) (string, error) {
	now := p.cfg.Sessions.Now()
	alg := p.cfg.Keys.Alg()
	claims := map[string]any{}
	var requested map[string]*claimSpec
	if g.Claims != nil {
		requested = g.Claims.IDToken
	}
	p.scopes.release(claims, user, g.Scopes, requested)
	maps.Copy(claims, map[string]any{
		"iss":       p.cfg.Issuer,
		"sub":       p.subjectFor(ctx, client, g.Subject),
		"aud":       g.ClientID,
		"azp":       g.ClientID,
		"exp":       now.Add(p.cfg.IDTokenTTL).Unix(),
		"iat":       now.Unix(),
		"auth_time": g.AuthTime.Unix(),
		"sid":       g.SID,
	})
	if x.AccessToken != "" {
		claims["at_hash"] = halfHash(alg, x.AccessToken)
	}
	if x.Code != "" {
		claims["c_hash"] = halfHash(alg, x.Code)
	}
	if x.Nonce != "" {
		claims["nonce"] = x.Nonce
	}
	if g.ACR != "" {
		claims["acr"] = g.ACR
	}
	if len(g.Levels) > 0 {
		claims["acr_levels"] = g.Levels
	}
	if len(g.AMR) > 0 {
		claims["amr"] = g.AMR
	}
	signer, err := p.cfg.Keys.Signer(idTokenType)
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// halfHash is at_hash / c_hash: the left half of the hash the signing
// algorithm uses, base64url (OIDC Core §3.1.3.6).
func halfHash(alg, s string) string {
	var h hash.Hash
	switch alg {
	case "RS384", "ES384", "PS384":
		h = sha512.New384()
	case "RS512", "ES512", "PS512":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write([]byte(s))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
