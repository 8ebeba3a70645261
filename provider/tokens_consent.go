package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// consentRecord is what a person decided for a client, remembered so the
// consent page is not shown again for the same request.
type consentRecord struct {
	ClientID string `json:"client_id"`
	// Asked are the items (scopes, and "claim:<name>" for claims asked
	// one by one) the person was shown; Granted those kept ticked.
	Asked   []string  `json:"asked"`
	Granted []string  `json:"granted"`
	Updated time.Time `json:"updated"`
}

// covers reports whether the record answers a request for items, of
// which required must have been granted.
func (c *consentRecord) covers(items, required []string) bool {
	for _, it := range items {
		if !slices.Contains(c.Asked, it) {
			return false
		}
	}
	for _, it := range required {
		if !slices.Contains(c.Granted, it) {
			return false
		}
	}
	return true
}

const (
	keyConsent = "consent:"
	// setConsentsOf lists the clients a person consented to.
	setConsentsOf = "consents:"
)

func consentKey(sub, clientID string) string { return keyConsent + sub + ":" + clientID }

// consent returns the remembered consent of sub for client, or nil.
func (t *tokens) consent(ctx context.Context, sub, clientID string) (*consentRecord, error) {
	var c consentRecord
	if found, _, err := t.load(ctx, consentKey(sub, clientID), &c); err != nil || !found {
		return nil, err
	}
	return &c, nil
}

// rememberConsent records that sub, shown asked, granted granted to
// client. Earlier answers to items not asked now are kept.
func (t *tokens) rememberConsent(ctx context.Context, sub, clientID string, asked, granted []string) error {
	now := t.now()
	err := t.st.Update(ctx, consentKey(sub, clientID), 0, func(old []byte) ([]byte, error) {
		c := consentRecord{ClientID: clientID}
		if old != nil {
			if err := json.Unmarshal(old, &c); err != nil {
				return nil, err
			}
		}
		c.Granted = slices.DeleteFunc(c.Granted, func(it string) bool { return slices.Contains(asked, it) })
		c.Granted = append(c.Granted, granted...)
		for _, it := range asked {
			if !slices.Contains(c.Asked, it) {
				c.Asked = append(c.Asked, it)
			}
		}
		slices.Sort(c.Asked)
		slices.Sort(c.Granted)
		c.Updated = now
		return json.Marshal(c)
	})
	if err != nil {
		return fmt.Errorf("saving consent: %w", err)
	}
	if err := t.st.SetAdd(ctx, setConsentsOf+sub, clientID); err != nil {
		return fmt.Errorf("saving consent: %w", err)
	}
	return nil
}

// consents lists the remembered consents of sub.
func (t *tokens) consents(ctx context.Context, sub string) ([]consentRecord, error) {
	ids, err := t.st.SetMembers(ctx, setConsentsOf+sub)
	if err != nil {
		return nil, fmt.Errorf("listing consents: %w", err)
	}
	var out []consentRecord
	for _, id := range ids {
		c, err := t.consent(ctx, sub, id)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

// withdraw forgets sub's consent for client and revokes everything the
// client holds for sub: its refresh families (offline ones included)
// and the access tokens issued in sessions sids.
func (t *tokens) withdraw(ctx context.Context, sub, clientID string, sids []string) error {
	if err := t.st.Apply(ctx, store.Delete(consentKey(sub, clientID)), store.SetRemove(setConsentsOf+sub, clientID)); err != nil {
		return fmt.Errorf("withdrawing consent: %w", err)
	}
	if err := t.revokeClient(ctx, sub, clientID); err != nil {
		return fmt.Errorf("withdrawing consent: %w", err)
	}
	for _, sid := range sids {
		keys, err := t.st.SetMembers(ctx, setBySession+sid)
		if err != nil {
			return fmt.Errorf("withdrawing consent: %w", err)
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, keyAccessToken) {
				continue
			}
			b, err := t.st.Get(ctx, k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return fmt.Errorf("withdrawing consent: %w", err)
			}
			var at accessToken
			if json.Unmarshal(b, &at) == nil && at.ClientID == clientID {
				if err := t.st.Apply(ctx, store.Delete(k), store.SetRemove(setBySession+sid, k)); err != nil {
					return fmt.Errorf("withdrawing consent: %w", err)
				}
			}
		}
	}
	return nil
}
