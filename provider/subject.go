package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Subject types (OIDC Core §8).
const (
	SubjectPublic   = "public"
	SubjectPairwise = "pairwise"
)

// keyPairwiseSalt is the installation's secret for pairwise subjects:
// made once, kept forever (changing it changes every pairwise sub).
const keyPairwiseSalt = "pairwise-salt"

// loadPairwiseSalt reads the salt, making it on first start.
func loadPairwiseSalt(ctx context.Context, st store.Store) ([]byte, error) {
	err := st.Create(ctx, keyPairwiseSalt, []byte(randomToken()), 0)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("pairwise salt: %w", err)
	}
	b, err := st.Get(ctx, keyPairwiseSalt)
	if err != nil {
		return nil, fmt.Errorf("pairwise salt: %w", err)
	}
	return b, nil
}

// subjectFor is the sub a client sees for user sub: the user's own id,
// or for a pairwise client an id of its sector that other sectors
// cannot correlate (OIDC Core §8.1).
func (p *Provider) subjectFor(_ context.Context, c *Client, sub string) string {
	if c == nil || c.SubjectType != SubjectPairwise || sub == "" {
		return sub
	}
	m := hmac.New(sha256.New, p.pairwiseSalt)
	m.Write([]byte(c.Sector()))
	m.Write([]byte{0})
	m.Write([]byte(sub))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Sector is what pairwise subjects are computed for: the host of
// sector_identifier_uri, or of the redirect URIs (Validate makes sure
// there is one). A native client's redirect URI names no host of its
// own (a custom scheme, or loopback, which every native app shares), so
// such a client is a sector of its own: its client id.
func (c *Client) Sector() string {
	raw := c.SectorIdentifierURI
	if raw == "" && len(c.RedirectURIs) > 0 {
		raw = c.RedirectURIs[0]
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if host := u.Hostname(); host != "" && (c.SectorIdentifierURI != "" || !isLoopbackHost(host)) {
		return host
	}
	return "client:" + c.ID
}
