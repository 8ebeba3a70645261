// Package webauthn is the chain module for passkeys and security keys
// (Web Authentication, with github.com/go-webauthn/webauthn).
//
// An instance after another module (after a password) is a second
// factor: the user's registered keys are asked, and a user who has none
// registers one on the spot when a level needs it (like TOTP's
// enrolment). An instance without `after` is a passwordless start: the
// browser offers the user's discoverable credentials (passkeys), with
// user verification, both behind its own button and in the autofill of
// the sign-in form's username field (conditional mediation); its levels
// are what that one gesture grants (`levels 1 2`).
//
// Credentials are the user's, not an instance's: they live in the
// kind's shared store (Deps.KindStore), so a passkey registered after a
// password signs in passwordless too. The ceremony state (challenge,
// user handle) travels sealed in the engine's continuation; the engine
// spends it once and regulates every Finish.
package webauthn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	chain.Register("webauthn", New)
}

// Settings of a webauthn module.
type Settings struct {
	// RPID is the relying party id: the domain passkeys are bound to.
	// Default: the issuer's host name. It must be that host or a
	// domain it is under (WebAuthn refuses others).
	RPID string `json:"rp_id,omitempty"`
	// Origins are the origins (scheme://host[:port]) whose pages may
	// use the passkeys. Default: the issuer's origin.
	Origins []string `json:"origins,omitempty"`
	// RPName is the name authenticators show. Default "Gatehouse".
	RPName string `json:"rp_name,omitempty"`
	// UserVerification: required, preferred (default) or discouraged,
	// for a second factor and registration. A passwordless start always
	// requires it.
	UserVerification string `json:"user_verification,omitempty"`
	// Attestation: none (default), indirect or direct.
	Attestation string `json:"attestation,omitempty"`
	// AAGUIDs, when set, are the only authenticator models that may be
	// registered (their AAGUIDs, as in 2fc0579f-8113-47ea-b116-bb5a8db9202a);
	// they need attestation direct or indirect, and a registration
	// without an attestation statement is refused.
	AAGUIDs []string `json:"aaguids,omitempty"`
	// ResidentKey: required, preferred (default) or discouraged. A
	// passwordless start needs required or preferred.
	ResidentKey string `json:"resident_key,omitempty"`
	// Timeout is how long the browser waits for the authenticator.
	// Default and most 5m (the engine keeps a ceremony that long).
	Timeout chain.Duration `json:"timeout,omitempty"`
	// RefuseCloned refuses an assertion whose signature counter went
	// backwards (a cloned key?). Either way it is logged and audited.
	RefuseCloned bool `json:"refuse_cloned,omitempty"`
	// Mandatory: every user must have a key here; users without one
	// register one at their next sign-in. Default: only users with a
	// key are asked, unless a request needs this module's level.
	Mandatory bool `json:"mandatory,omitempty"`
}

const (
	maxTimeout     = 5 * time.Minute
	defaultTimeout = 5 * time.Minute
	// maxKeys caps the credentials of one user.
	maxKeys = 20
)

// Validate checks the settings (also when `caddy adapt` reads them).
func (s *Settings) Validate() error {
	if !oneOf(s.UserVerification, "required", "preferred", "discouraged") {
		return fmt.Errorf("user_verification is required, preferred or discouraged, not %q", s.UserVerification)
	}
	if !oneOf(s.Attestation, "none", "indirect", "direct") {
		return fmt.Errorf("attestation is none, indirect or direct, not %q", s.Attestation)
	}
	if !oneOf(s.ResidentKey, "required", "preferred", "discouraged") {
		return fmt.Errorf("resident_key is required, preferred or discouraged, not %q", s.ResidentKey)
	}
	if _, err := parseAAGUIDs(s.AAGUIDs); err != nil {
		return err
	}
	if len(s.AAGUIDs) > 0 && (s.Attestation == "" || s.Attestation == "none") {
		return errors.New("aaguids need attestation direct or indirect (with none, authenticators do not say what they are)")
	}
	if t := time.Duration(s.Timeout); t < 0 || t > maxTimeout || (t != 0 && t < 10*time.Second) {
		return fmt.Errorf("timeout is between 10s and %s, not %s", maxTimeout, t)
	}
	for _, o := range s.Origins {
		if _, err := parseOrigin(o); err != nil {
			return err
		}
	}
	if s.RPID != "" && (strings.ContainsAny(s.RPID, ":/ ") || protocol.ValidateRPID(s.RPID) != nil) {
		return fmt.Errorf("rp_id %q is no domain name", s.RPID)
	}
	return nil
}

func oneOf(v string, allowed ...string) bool { return v == "" || slices.Contains(allowed, v) }

// parseAAGUIDs reads an allow-list of AAGUIDs; the zero AAGUID (a model
// that does not say what it is) is refused.
func parseAAGUIDs(in []string) ([]uuid.UUID, error) {
	var out []uuid.UUID
	for _, s := range in {
		u, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return nil, fmt.Errorf("aaguid %q is not an AAGUID like 2fc0579f-8113-47ea-b116-bb5a8db9202a", s)
		}
		if u == uuid.Nil {
			return nil, errors.New("aaguid 00000000-0000-0000-0000-000000000000 names no model")
		}
		out = append(out, u)
	}
	return out, nil
}

// parseOrigin checks that o is a bare origin: http(s)://host[:port].
func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q is not an origin like https://login.example.com", o)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Module is a webauthn module instance.
type Module struct {
	name    string
	wa      *webauthn.WebAuthn
	s       Settings
	aaguids []uuid.UUID
	start   bool // no `after`: a passwordless start
	// showsAccount: the first enabled webauthn instance of the chain
	// has the account page's part.
	showsAccount bool
	keys         *keyStore
	users        *users.Directory
	audit        *audit.Log
	log          *slog.Logger
	now          func() time.Time
	uvSecond     protocol.UserVerificationRequirement
	residents    protocol.ResidentKeyRequirement
}

// New builds the module.
func New(d chain.Deps, s Settings) (chain.Module, error) {
	if d.KindStore == nil || d.Users == nil {
		return nil, errors.New("webauthn needs the store and the user directory")
	}
	iss, err := url.Parse(d.Issuer)
	if err != nil || iss.Host == "" {
		return nil, errors.New("webauthn needs the issuer URL (its host is the default rp_id)")
	}
	m := &Module{name: d.Name, s: s, users: d.Users, audit: d.Audit, log: d.Logger, now: d.Now,
		keys: &keyStore{st: d.KindStore}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for _, mc := range d.Chain {
		if mc.Name == d.Name {
			m.start = len(mc.After) == 0
		}
	}
	for _, mc := range d.Chain {
		if mc.Kind == "webauthn" && !mc.Disabled {
			m.showsAccount = mc.Name == d.Name
			break
		}
	}
	m.aaguids, _ = parseAAGUIDs(s.AAGUIDs)
	rpID := s.RPID
	if rpID == "" {
		rpID = iss.Hostname()
	}
	host := iss.Hostname()
	if protocol.ValidateRPID(rpID) != nil {
		return nil, fmt.Errorf("rp_id %q is no domain name (WebAuthn needs one; an IP address will not do)", rpID)
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return nil, fmt.Errorf("rp_id %q is not the issuer's host %q or a domain it is under", rpID, host)
	}
	origins := slices.Clone(s.Origins)
	if len(origins) == 0 {
		origins = []string{iss.Scheme + "://" + iss.Host}
	}
	for i, o := range origins {
		origins[i], _ = parseOrigin(o)
	}
	m.uvSecond = protocol.UserVerificationRequirement(orDefault(s.UserVerification, "preferred"))
	m.residents = protocol.ResidentKeyRequirement(orDefault(s.ResidentKey, "preferred"))
	if m.start && s.Mandatory {
		return nil, errors.New("mandatory is for a webauthn module after another: a start module is a way in, not a step everyone takes")
	}
	if m.start && m.residents == protocol.ResidentKeyRequirementDiscouraged {
		return nil, errors.New("a webauthn start module (no `after`) signs in without a username: resident_key must be required or preferred")
	}
	timeout := time.Duration(s.Timeout)
	if timeout == 0 {
		timeout = defaultTimeout
	}
	m.wa, err = webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         orDefault(s.RPName, "Gatehouse"),
		RPOrigins:             origins,
		AttestationPreference: protocol.ConveyancePreference(orDefault(s.Attestation, "none")),
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: timeout, TimeoutUVD: timeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: timeout, TimeoutUVD: timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return m, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Script is the page's one script, Gatehouse's own.
func (m *Module) Script() chain.Script { return chain.Script{Static: "webauthn.js"} }

// Autofill: a start instance's passkeys are offered in the autofill of
// the sign-in form's username field.
func (m *Module) Autofill() string {
	if m.start {
		return "webauthn"
	}
	return ""
}

// Applicable: users with a key, or everyone when mandatory.
func (m *Module) Applicable(ctx context.Context, u users.User) (bool, error) {
	if m.s.Mandatory {
		return true, nil
	}
	rec, err := m.keys.load(ctx, u.Subject)
	return len(rec.Keys) > 0, err
}

// keyNameField asks a new key's name.
var keyNameField = chain.Field{Name: "keyname", Label: "Name of this passkey (optional)", Type: "text", MaxLength: 64,
	Autocomplete: "off", Placeholder: "My laptop", Optional: true}

// Prompt is the page: a button the script wires up.
func (m *Module) Prompt(ctx context.Context, a *chain.Attempt) (chain.Prompt, error) {
	p := chain.Prompt{NoSubmit: true, ScriptButton: "Use a passkey",
		NoScript: "Passkeys need JavaScript, which is off in this browser. Turn it on, or use another method below."}
	switch {
	case a.Account():
		p.Title, p.ScriptButton = "Add a passkey", "Create a passkey"
		p.Intro = "Create a passkey for your account: your device will ask for your fingerprint, face, PIN or a touch of your key."
		p.Fields = []chain.Field{keyNameField}
	case a.Subject == "" || m.start:
		p.Title = "Sign in with a passkey"
		p.Intro = "Use the passkey saved on this device, your phone or your security key. No username needed."
	default:
		rec, err := m.keys.load(ctx, a.Subject)
		if err != nil {
			return p, err
		}
		if len(rec.Keys) == 0 {
			p.Title, p.ScriptButton = "Add a passkey", "Create a passkey"
			p.Intro = "This sign-in needs a passkey or security key. Create one now: your device will ask for your fingerprint, face, PIN or a touch of your key."
			p.Fields = []chain.Field{keyNameField}
		} else {
			p.Title = "Use your passkey"
			p.Intro = "Confirm with the passkey or security key you registered."
		}
	}
	return p, nil
}

var (
	_ chain.ScriptedModule = (*Module)(nil)
	_ chain.Applicable     = (*Module)(nil)
	_ chain.AdminActions   = (*Module)(nil)
	_ chain.Autofiller     = (*Module)(nil)
)
