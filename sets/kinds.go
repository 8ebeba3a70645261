package sets

import (
	"fmt"
	"slices"
	"strings"
)

// Kinds of events a receiver may ask for (its events list).
const (
	Login             = "login"              // a sign-in started a session
	Logout            = "logout"             // a session ended (for any reason)
	UserCreated       = "user_created"       // an account was created (sign-up or admin)
	UserChanged       = "user_changed"       // an admin changed an account's groups or profile
	UserDisabled      = "user_disabled"      // an admin disabled an account
	UserEnabled       = "user_enabled"       // an account was enabled again, or activated
	UserDeleted       = "user_deleted"       // an account was deleted
	CredentialChanged = "credential_changed" // a password or factor was set, added or removed
)

// Kinds lists every kind, in the order the README gives them.
var Kinds = []string{Login, Logout, UserCreated, UserChanged, UserDisabled, UserEnabled, UserDeleted, CredentialChanged}

// Event type URIs (OpenID CAEP 1.0 and RISC 1.0).
const (
	CAEPSessionEstablished = "https://schemas.openid.net/secevent/caep/event-type/session-established"
	CAEPSessionRevoked     = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	CAEPCredentialChange   = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	CAEPTokenClaimsChange  = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change"
	RISCAccountDisabled    = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	RISCAccountEnabled     = "https://schemas.openid.net/secevent/risc/event-type/account-enabled"
	RISCAccountPurged      = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
)

// AccountCreatedPath is appended to the issuer for the type of the
// account-created event, which no shared profile registers.
const AccountCreatedPath = "/secevent/account-created"

// TokenType is the typ header of every SET (RFC 8417 §2.3).
const TokenType = "secevent+jwt"

// ParseKinds checks a receiver's list of kinds: each known, none twice.
func ParseKinds(names []string) error {
	for i, n := range names {
		if !slices.Contains(Kinds, n) {
			return fmt.Errorf("unknown event %q (events: %s)", n, strings.Join(Kinds, ", "))
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("event %q is listed twice", n)
		}
	}
	return nil
}
