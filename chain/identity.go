package chain

import (
	"context"
	"errors"
	"fmt"
)

// Identity is who passed a module: an existing local user (Subject), or
// an identity at another issuer not linked to a local user yet
// (Unlinked), with the RFC 8176 method values of this pass. The zero
// Identity means "not passed yet".
type Identity struct {
	// Subject is the local user's subject.
	Subject string
	// Unlinked are the claims of an identity at another issuer that no
	// local user has yet; set instead of Subject. The engine asks its
	// Linker for the local user; without one it refuses the sign-in
	// with a page that says the account is not known here.
	Unlinked *Claims
	// AMR are the RFC 8176 values of this pass (AMRPassword, AMROTP, …);
	// at least one, each a registered value — except for an identity at
	// another issuer whose provider did not say how the person signed
	// in (with a registered value): a value made up here would tell
	// relying parties nothing true, so it passes with none. Tokens carry the values of
	// the modules passed in the current authentication (plus "mfa" when
	// they differ).
	AMR []string
	// EndSessions: the module gave the user a new credential (a password
	// reset): every session of the user ends (logout everywhere, unless
	// the configuration keeps sessions on a password change) and this
	// sign-in goes on in a new session.
	EndSessions bool
	// Levels are the levels this pass reached, when the module reached
	// only some of its configured levels (a remote provider's acr
	// decides); each must be one of them. Empty: all of them.
	Levels []string
	// Ref is what the module knows this pass by at another site (the
	// remote provider's session id): kept with the pass in the SSO
	// session, so that the module can end the sessions that came from
	// it (Deps.Sessions).
	Ref string
}

// IsZero reports whether id is "not passed yet".
func (id Identity) IsZero() bool {
	return id.Subject == "" && id.Unlinked == nil && len(id.AMR) == 0 && !id.EndSessions
}

// Claims describe an identity at another issuer.
type Claims struct {
	// Issuer and Subject identify it there (the pair is unique).
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`

	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"email_verified,omitempty"`
	Name              string   `json:"name,omitempty"`
	GivenName         string   `json:"given_name,omitempty"`
	FamilyName        string   `json:"family_name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	// Extra are other claims the issuer gave.
	Extra map[string]any `json:"extra,omitempty"`

	// Module is the module that passed with these claims (the engine
	// sets it before asking its Linker).
	Module string `json:"module,omitempty"`
	// Create: the Linker may create a local account for this identity
	// when no account has it (the module's just-in-time setting); else
	// it only finds accounts already linked.
	Create bool `json:"create,omitempty"`
}

// Linker finds (or creates) the local user of an identity at another
// issuer: account linking and just-in-time accounts.
type Linker interface {
	// Link returns the local user of c: the account c is linked to,
	// or one it creates (c.Create). It returns ErrNotLinked when there
	// is none and it makes none, and a *ProveAccount when c names an
	// existing account that it is not linked to (its verified address):
	// the engine then asks the person to sign in to that account, and
	// calls Attach once they have. Never does it return an account c is
	// not linked to.
	Link(ctx context.Context, a *Attempt, c Claims) (subject string, err error)
	// Attach links c to the account subject, which the person has just
	// signed in to in full. It refuses (users.ErrLinked) an identity
	// linked to another account meanwhile.
	Attach(ctx context.Context, subject string, c Claims) error
}

// ProveAccount is the Linker's answer for an identity at another issuer
// whose verified address (or name) is an existing account's, which the
// identity is not linked to: the address is no proof of the account,
// so the person must sign in to it before the two are linked.
type ProveAccount struct {
	// Subject is the existing account.
	Subject string
	// Message tells the person what to do (shown on the sign-in page).
	Message string
}

func (p *ProveAccount) Error() string {
	return "chain: identity names an existing account: " + p.Message
}

// ErrNotLinked: an identity at another issuer has no local user.
var ErrNotLinked = errors.New("chain: identity not linked to a local user")

// RFC 8176 authentication method reference values
// (https://www.iana.org/assignments/authentication-method-reference-values).
// A mailed single-use link or code is AMROTP: RFC 8176 has no value for
// mail, and a made-up one would mean nothing to relying parties.
const (
	AMRFace        = "face"   // facial recognition
	AMRFingerprint = "fpt"    // fingerprint
	AMRGeo         = "geo"    // geolocation
	AMRHardwareKey = "hwk"    // proof of possession of a hardware-secured key
	AMRIris        = "iris"   // iris scan
	AMRKnowledge   = "kba"    // knowledge-based authentication
	AMRMultiChan   = "mca"    // multiple-channel authentication
	AMRMultiFactor = "mfa"    // multiple factors
	AMROTP         = "otp"    // one-time password
	AMRPIN         = "pin"    // personal identification number
	AMRPassword    = "pwd"    // password
	AMRRisk        = "rba"    // risk-based authentication
	AMRRetina      = "retina" // retina scan
	AMRSmartCard   = "sc"     // smart card
	AMRSMS         = "sms"    // confirmation by SMS
	AMRSoftwareKey = "swk"    // proof of possession of a software-secured key
	AMRTelephone   = "tel"    // confirmation by telephone call
	AMRUser        = "user"   // user presence test (a passkey's UP/UV)
	AMRVoice       = "vbm"    // voice biometrics
	AMRWindows     = "wia"    // Windows integrated authentication
)

var registeredAMR = map[string]bool{
	AMRFace: true, AMRFingerprint: true, AMRGeo: true, AMRHardwareKey: true, AMRIris: true, AMRKnowledge: true,
	AMRMultiChan: true, AMRMultiFactor: true, AMROTP: true, AMRPIN: true, AMRPassword: true, AMRRisk: true,
	AMRRetina: true, AMRSmartCard: true, AMRSMS: true, AMRSoftwareKey: true, AMRTelephone: true, AMRUser: true,
	AMRVoice: true, AMRWindows: true,
}

// RegisteredAMR reports whether RFC 8176 registers the method value v.
func RegisteredAMR(v string) bool { return registeredAMR[v] }

// checkIdentity refuses an Identity a module should not have returned:
// the engine's answer to a module's bug is a technical failure, never a
// pass.
func checkIdentity(module string, id Identity) error {
	switch {
	case id.Subject != "" && id.Unlinked != nil:
		return fmt.Errorf("chain: module %q passed with both a subject and unlinked claims", module)
	case id.Subject == "" && id.Unlinked == nil:
		return fmt.Errorf("chain: module %q passed with no subject and no claims", module)
	case id.Unlinked != nil && (id.Unlinked.Issuer == "" || id.Unlinked.Subject == ""):
		return fmt.Errorf("chain: module %q passed with claims lacking issuer or subject", module)
	case id.Unlinked != nil && id.Unlinked.Module != "":
		return fmt.Errorf("chain: module %q passed with claims naming a module; the engine names it", module)
	case len(id.AMR) == 0 && id.Unlinked == nil:
		return fmt.Errorf("chain: module %q passed with no amr value", module)
	}
	for _, v := range id.AMR {
		if !registeredAMR[v] {
			return fmt.Errorf("chain: module %q passed with amr %q, which RFC 8176 does not register", module, v)
		}
	}
	return nil
}
