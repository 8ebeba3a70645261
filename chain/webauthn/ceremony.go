package webauthn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
)

// Ceremony kinds: "get" asserts a registered key, "create" registers
// one.
const (
	kindGet    = "get"
	kindCreate = "create"
)

// ceremony is what Begin keeps for Finish (sealed by the engine, bound
// to the attempt, browser and module, spent once).
type ceremony struct {
	Kind string `json:"kind"`
	// Subject is who the ceremony is for; "" for a passwordless start.
	Subject string               `json:"sub,omitempty"`
	Handle  []byte               `json:"handle,omitempty"`
	Session webauthn.SessionData `json:"session"`
}

// beginIn is the page's first request.
type beginIn struct {
	// Conditional: the passkeys go to the username field's autofill.
	Conditional bool `json:"conditional,omitempty"`
}

// beginOut goes to the script: the kind, and the options for
// navigator.credentials.get or create.
type beginOut struct {
	Kind      string `json:"kind"`
	Options   any    `json:"options"`
	Mediation string `json:"mediation,omitempty"`
}

// finishIn is the page's answer.
type finishIn struct {
	Credential json.RawMessage `json:"credential"`
	// Name names a key being registered.
	Name string `json:"name,omitempty"`
}

// Begin answers the page's first request: an assertion of the user's
// keys (a discoverable one at a passwordless start), or the creation of
// a key for a user who has none.
func (m *Module) Begin(ctx context.Context, a *chain.Attempt, in json.RawMessage) (any, []byte, error) {
	var req beginIn
	if len(bytes.TrimSpace(in)) > 0 && !bytes.Equal(bytes.TrimSpace(in), []byte("null")) {
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, nil, chain.Reject("The page's request could not be read. Reload the page.")
		}
	}
	c := ceremony{Subject: a.Subject}
	var out beginOut
	switch {
	case a.Account():
		// "Add a passkey" on the account page: for the signed-in user.
		if a.Subject == "" {
			return nil, nil, errors.New("webauthn: an account attempt without its user")
		}
		return m.beginCreate(ctx, c)
	case m.start:
		// A start instance always asks for a discoverable passkey with
		// user verification, even if an older session named someone:
		// whoever's passkey answers is who signs in.
		c.Subject = ""
		mediation := protocol.MediationDefault
		if req.Conditional {
			mediation = protocol.MediationConditional
		}
		opts, s, err := m.wa.BeginDiscoverableMediatedLogin(mediation, webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			return nil, nil, fmt.Errorf("webauthn: %w", err)
		}
		c.Kind, c.Session, out = kindGet, *s, beginOut{Kind: kindGet, Options: opts.Response, Mediation: string(opts.Mediation)}
	case a.Subject == "":
		return nil, nil, errors.New("webauthn after another module was reached with nobody identified")
	default:
		rec, err := m.keys.load(ctx, a.Subject)
		if err != nil {
			return nil, nil, err
		}
		if len(rec.Keys) == 0 {
			return m.beginCreate(ctx, c)
		}
		user := &waUser{handle: rec.Handle, keys: rec.Keys}
		opts, s, err := m.wa.BeginLogin(user, webauthn.WithUserVerification(m.uvSecond))
		if err != nil {
			return nil, nil, fmt.Errorf("webauthn: %w", err)
		}
		c.Kind, c.Session, out = kindGet, *s, beginOut{Kind: kindGet, Options: opts.Response}
	}
	keep, err := json.Marshal(c)
	return out, keep, err
}

// beginCreate starts registering a key for c.Subject.
func (m *Module) beginCreate(ctx context.Context, c ceremony) (any, []byte, error) {
	u, err := m.users.Get(ctx, c.Subject)
	if err != nil {
		return nil, nil, err
	}
	if c.Handle, err = m.keys.handleFor(ctx, c.Subject); err != nil {
		return nil, nil, err
	}
	rec, err := m.keys.load(ctx, c.Subject)
	if err != nil {
		return nil, nil, err
	}
	shown := u.Name
	if shown == "" {
		shown = u.Username
	}
	user := &waUser{handle: c.Handle, name: u.Username, shown: shown, keys: rec.Keys}
	required := m.residents == protocol.ResidentKeyRequirementRequired
	opts, s, err := m.wa.BeginRegistration(user,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: m.residents, RequireResidentKey: &required, UserVerification: m.uvSecond,
		}),
		webauthn.WithExclusions(webauthn.Credentials(user.WebAuthnCredentials()).CredentialDescriptors()))
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: %w", err)
	}
	c.Kind, c.Session = kindCreate, *s
	keep, err := json.Marshal(c)
	return beginOut{Kind: kindCreate, Options: opts.Response}, keep, err
}

// maxCredential bounds the answer the library parses.
const maxCredential = 32 << 10

// Finish checks the page's answer with the ceremony Begin kept.
func (m *Module) Finish(ctx context.Context, a *chain.Attempt, in json.RawMessage, keep []byte) (chain.Identity, error) {
	var c ceremony
	if err := json.Unmarshal(keep, &c); err != nil {
		return chain.Identity{}, fmt.Errorf("webauthn: ceremony: %w", err)
	}
	var req finishIn
	if err := json.Unmarshal(in, &req); err != nil || len(req.Credential) == 0 || len(req.Credential) > maxCredential {
		m.refused(ctx, a.Subject, "", "unreadable answer")
		return chain.Identity{}, chain.Reject("The passkey's answer could not be read. Try again.")
	}
	if c.Subject != "" && c.Subject != a.Subject {
		// Someone else was identified in this attempt since Begin.
		m.refused(ctx, a.Subject, "", "ceremony begun for another user")
		return chain.Identity{}, chain.Reject("This step has expired. Start it again.")
	}
	switch c.Kind {
	case kindGet:
		return m.finishGet(ctx, c, req)
	case kindCreate:
		return m.finishCreate(ctx, c, req)
	}
	return chain.Identity{}, fmt.Errorf("webauthn: ceremony of kind %q", c.Kind)
}

// finishGet checks an assertion: of one of c.Subject's keys, or of a
// discoverable passkey whose user handle names its user.
func (m *Module) finishGet(ctx context.Context, c ceremony, req finishIn) (chain.Identity, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential)
	if err != nil {
		m.refused(ctx, c.Subject, "", "unreadable assertion: "+detail(err))
		return chain.Identity{}, refusal
	}
	sub := c.Subject
	var cred *webauthn.Credential
	if sub == "" {
		lookupErr := error(nil)
		handler := func(_, handle []byte) (webauthn.User, error) {
			s, err := m.keys.byHandle(ctx, handle)
			if err != nil || s == "" {
				lookupErr = err
				return nil, errors.New("no user has this passkey")
			}
			rec, err := m.keys.load(ctx, s)
			if err != nil {
				lookupErr = err
				return nil, err
			}
			sub = s
			return &waUser{handle: rec.Handle, keys: rec.Keys}, nil
		}
		cred, err = m.wa.ValidateDiscoverableLogin(handler, c.Session, parsed)
		if lookupErr != nil {
			return chain.Identity{}, lookupErr
		}
	} else {
		var rec userKeys
		if rec, err = m.keys.load(ctx, sub); err != nil {
			return chain.Identity{}, err
		}
		cred, err = m.wa.ValidateLogin(&waUser{handle: rec.Handle, keys: rec.Keys}, c.Session, parsed)
	}
	if err != nil {
		m.refused(ctx, sub, b64(parsed.RawID), detail(err))
		return chain.Identity{}, refusal
	}
	if cred.Authenticator.CloneWarning {
		m.log.Warn("passkey signature counter went backwards: the key may be cloned",
			"sub", sub, "credential", b64(cred.ID), "count", parsed.Response.AuthenticatorData.Counter)
		m.audit.Record(ctx, audit.Event{Event: audit.PasskeyCloned, Subject: sub, Module: m.name, Target: b64(cred.ID),
			Reason: fmt.Sprintf("sign count %d not above %d", parsed.Response.AuthenticatorData.Counter, cred.Authenticator.SignCount)})
		if m.s.RefuseCloned {
			return chain.Identity{}, chain.Reject("This passkey was refused: it may have been copied. Use another way to sign in, and tell the administrator.")
		}
	}
	if err := m.keys.used(ctx, sub, cred, m.now()); errors.Is(err, errNoKey) {
		m.refused(ctx, sub, b64(cred.ID), "key removed during the sign-in")
		return chain.Identity{}, refusal
	} else if err != nil {
		return chain.Identity{}, err
	}
	uv := parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	id := chain.Identity{Subject: sub, AMR: amr(cred.Flags.BackupEligible, uv)}
	m.audit.Record(ctx, audit.Event{Event: audit.PasskeyUsed, Subject: sub, Module: m.name, Target: b64(cred.ID), AMR: id.AMR})
	return id, nil
}

// finishCreate checks a new key's attestation and stores the key.
func (m *Module) finishCreate(ctx context.Context, c ceremony, req finishIn) (chain.Identity, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		m.refused(ctx, c.Subject, "", "unreadable registration: "+detail(err))
		return chain.Identity{}, chain.Reject("The new passkey's answer could not be read. Try again.")
	}
	rec, err := m.keys.load(ctx, c.Subject)
	if err != nil {
		return chain.Identity{}, err
	}
	cred, err := m.wa.CreateCredential(&waUser{handle: c.Handle, keys: rec.Keys}, c.Session, parsed)
	if err != nil {
		m.refused(ctx, c.Subject, b64(parsed.RawID), "registration: "+detail(err))
		return chain.Identity{}, chain.Reject("The new passkey was not accepted. Try again, or use another passkey or security key.")
	}
	if msg := m.allowedModel(cred); msg != "" {
		m.refused(ctx, c.Subject, b64(cred.ID), "registration: "+msg)
		return chain.Identity{}, chain.Reject("This kind of passkey or security key is not allowed here. Use one your administrator approved.")
	}
	k := key{Name: keyName(req.Name, cred), Cred: *cred, Created: m.now(), LastUsed: m.now()}
	switch err := m.keys.add(ctx, c.Subject, c.Handle, k); {
	case errors.Is(err, errTooMany):
		return chain.Identity{}, chain.Reject(fmt.Sprintf("You have %d passkeys, the most allowed. Remove one on your account page first.", maxKeys))
	case errors.Is(err, errRaced):
		return chain.Identity{}, chain.Reject("Another passkey was added to your account meanwhile (in another tab?). Try again.")
	case errors.Is(err, errTaken):
		m.refused(ctx, c.Subject, k.ID(), "registration: credential registered already")
		return chain.Identity{}, chain.Reject("This passkey is registered already.")
	case err != nil:
		return chain.Identity{}, err
	}
	uv := parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified()
	id := chain.Identity{Subject: c.Subject, AMR: amr(cred.Flags.BackupEligible, uv)}
	m.audit.Record(ctx, audit.Event{Event: audit.PasskeyRegistered, Subject: c.Subject, Module: m.name, Target: k.ID(), Reason: k.Name})
	return id, nil
}

// allowedModel checks the AAGUID allow-list: "" when the key may be
// registered, else why not.
func (m *Module) allowedModel(cred *webauthn.Credential) string {
	if len(m.aaguids) == 0 {
		return ""
	}
	if cred.AttestationFormat == "" || cred.AttestationFormat == string(protocol.AttestationFormatNone) {
		return "no attestation statement, and aaguids are set"
	}
	got, err := uuid.FromBytes(cred.Authenticator.AAGUID)
	if err != nil || !slices.Contains(m.aaguids, got) {
		return "authenticator model " + got.String() + " is not among aaguids"
	}
	return ""
}

// refusal is what a person is told of a refused assertion: the same
// whatever went wrong (an unknown key tells nothing about accounts).
var refusal = chain.Reject("This passkey was not accepted. Try again, or use another way to sign in.")

// refused audits a refused ceremony (the engine records the failed
// step and counts it; this says why, for the administrator).
func (m *Module) refused(ctx context.Context, sub, cred, why string) {
	m.audit.Record(ctx, audit.Event{Event: audit.PasskeyRefused, Subject: sub, Module: m.name, Target: cred, Reason: why})
}

// detail is a library error's reason, bounded for the log.
func detail(err error) string {
	var pe *protocol.Error
	s := err.Error()
	if errors.As(err, &pe) && pe.Details != "" {
		s = pe.Details
		if pe.DevInfo != "" {
			s += ": " + pe.DevInfo
		}
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// amr are the RFC 8176 values of a pass: hwk for a key bound to its
// device, swk for a synced passkey (backup eligible: its private key is
// kept in software somewhere); with user verification (PIN or
// biometrics on the authenticator) also user and mfa — one gesture,
// two factors.
func amr(synced, verified bool) []string {
	k := chain.AMRHardwareKey
	if synced {
		k = chain.AMRSoftwareKey
	}
	if verified {
		return []string{k, chain.AMRUser, chain.AMRMultiFactor}
	}
	return []string{k}
}

// keyName is a new key's name: the one typed, cleaned, else a default.
func keyName(typed string, cred *webauthn.Credential) string {
	name := strings.Join(strings.FieldsFunc(typed, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if r := []rune(name); len(r) > 64 {
		name = string(r[:64])
	}
	if name != "" {
		return name
	}
	if cred.Flags.BackupEligible {
		return "Passkey"
	}
	return "Security key"
}
