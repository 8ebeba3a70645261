package provider

import (
	"context"
	"fmt"
)

// ForgetUser takes back everything the provider keeps for a user being
// deleted: every consent (and what each client holds through it) and
// every refresh-token family, offline ones included. End the user's
// sessions first (logout), which revokes the tokens issued in them.
func (p *Provider) ForgetUser(ctx context.Context, sub string) error {
	consents, err := p.tokens.consents(ctx, sub)
	if err != nil {
		return fmt.Errorf("forgetting user: %w", err)
	}
	for _, c := range consents {
		if err := p.tokens.withdraw(ctx, sub, c.ClientID, nil); err != nil {
			return fmt.Errorf("forgetting user: %w", err)
		}
	}
	fams, err := p.tokens.families(ctx, sub)
	if err != nil {
		return fmt.Errorf("forgetting user: %w", err)
	}
	for _, f := range fams {
		if err := p.tokens.revokeFamily(ctx, f.ID); err != nil {
			return fmt.Errorf("forgetting user: %w", err)
		}
	}
	return nil
}
