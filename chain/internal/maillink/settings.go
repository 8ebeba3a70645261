package maillink

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
)

// Bounds of a mailed link's life (setting link_ttl). A link works at most
// as long as the sign-in page that asked for it (30 minutes by default).
const (
	MinLinkTTL = time.Minute
	MaxLinkTTL = time.Hour
)

// Values of the other_browser setting.
const (
	OtherBrowserRefuse   = "refuse"
	OtherBrowserContinue = "continue"
)

// Settings are those of the kinds that mail a link (password_reset,
// magic_link).
type Settings struct {
	// LinkTTL is how long the mailed link (and its code, if the mail
	// has one) works: 1m to 1h, default 15m. A link never outlives the
	// sign-in page that asked for it (30 minutes).
	LinkTTL chain.Duration `json:"link_ttl,omitempty"`
	// OtherBrowser is what the link does when opened in another browser
	// than the one that asked: "refuse" (the default: a page says to
	// open it in the browser that asked — or to type the code there —
	// and the link stays good) or "continue" (the sign-in moves to the
	// browser that opened the link, keeping only what the link proves;
	// the one that asked cannot finish it).
	OtherBrowser string `json:"other_browser,omitempty"`
}

// Validate checks the settings.
func (s *Settings) Validate() error {
	if d := time.Duration(s.LinkTTL); d != 0 && (d < MinLinkTTL || d > MaxLinkTTL) {
		return fmt.Errorf("link_ttl %s: a mailed link lives between %s and %s", d, MinLinkTTL, MaxLinkTTL)
	}
	_, err := otherBrowser(s.OtherBrowser)
	return err
}

func otherBrowser(s string) (chain.Elsewhere, error) {
	switch s {
	case "", OtherBrowserRefuse:
		return chain.SameBrowserOnly, nil
	case OtherBrowserContinue:
		return chain.ContinueThere, nil
	}
	return 0, fmt.Errorf("other_browser is %s or %s, not %q", OtherBrowserRefuse, OtherBrowserContinue, s)
}

// New checks the settings and that d has what mailing links needs, and
// returns the kind's Sender of template and how its links behave (code:
// the mail carries a code to type in the browser that asked).
func New(d chain.Deps, s Settings, template string, code bool) (Sender, chain.Mailing, error) {
	if d.Users == nil || d.Store == nil {
		return Sender{}, chain.Mailing{}, errors.New("a kind that mails links needs the user directory and a store")
	}
	if err := s.Validate(); err != nil {
		return Sender{}, chain.Mailing{}, err
	}
	elsewhere, _ := otherBrowser(s.OtherBrowser)
	ttl := time.Duration(s.LinkTTL)
	if ttl == 0 {
		ttl = DefaultLinkTTL
	}
	return Sender{D: d, Template: template}, chain.Mailing{TTL: ttl, Code: code, Elsewhere: elsewhere}, nil
}

// DefaultLinkTTL is a link's life when link_ttl is not set.
const DefaultLinkTTL = 15 * time.Minute
