// Package totp is the chain module for time-based one-time passwords
// (RFC 6238) from an authenticator app, with enrolment (QR code rendered
// here, manual key), replay protection, per-user rate limiting, recovery
// codes and secrets encrypted at rest.
//
// Its records live in the instance's own store (Deps.Store). Records
// from before instances had a store of their own (keys "totp:<sub>" and
// "keys:totp" at the top of the store) are moved in when first read, so
// enrolments survive the upgrade. Its admin action "reset" removes a
// user's TOTP.
package totp

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	chain.Register("totp", New)
}

// Settings of a totp module.
type Settings struct {
	// Issuer is the name shown in the authenticator app (default
	// "Gatehouse").
	Issuer string `json:"issuer,omitempty"`
	// Mandatory: every user must use it; users without it enrol at
	// their next login. Default: only users who enrolled are asked,
	// unless a request needs this module's level.
	Mandatory bool `json:"mandatory,omitempty"`
}

const (
	period        = 30
	maxFailures   = 5
	failWindow    = 15 * time.Minute
	recoveryCount = 10
	// Keys in the instance's store; keyRecord and keyCipher are also
	// the keys the records had at the top of the store before.
	keyRecord   = "totp:"
	keyPending  = "totp-pending:"
	keyFailures = "totp-fail:"
	keyCipher   = "keys:totp"
)

// Module is the TOTP module.
type Module struct {
	name      string
	audit     *audit.Log
	users     *users.Directory
	st        *store.Prefixed
	now       func() time.Time
	issuer    string
	mandatory bool
}

// New builds the module.
func New(d chain.Deps, s Settings) (chain.Module, error) {
	m := &Module{name: d.Name, users: d.Users, st: d.Store, now: d.Now, issuer: s.Issuer, mandatory: s.Mandatory, audit: d.Audit}
	if m.st == nil || m.users == nil {
		return nil, errors.New("totp module needs the store and the user directory")
	}
	if m.issuer == "" {
		m.issuer = "Gatehouse"
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// record is a user's enrolled TOTP.
type record struct {
	Secret     string    `json:"secret"` // encrypted
	LastStep   int64     `json:"last_step"`
	Recovery   []string  `json:"recovery"` // SHA-256 of unused codes
	EnrolledAt time.Time `json:"enrolled_at"`
}

// pending is an enrolment in progress, bound to one login attempt.
type pending struct {
	Secret   string   `json:"secret"` // encrypted
	Recovery []string `json:"recovery"`
}

// Applicable: users who enrolled, or everyone when mandatory.
func (m *Module) Applicable(ctx context.Context, u users.User) (bool, error) {
	if m.mandatory {
		return true, nil
	}
	return m.enrolled(ctx, u.Subject)
}

// enrolled reports whether sub has TOTP set up, moving in a record kept
// before the instance had a store of its own.
func (m *Module) enrolled(ctx context.Context, sub string) (bool, error) {
	_, err := m.st.Get(ctx, keyRecord+sub)
	if errors.Is(err, store.ErrNotFound) {
		return m.st.Adopt(ctx, keyRecord+sub, keyRecord+sub, 0, true)
	}
	return err == nil, err
}

// reset removes sub's TOTP (lost phone): the next login enrols again. A
// record from before the instance's own store goes too.
func (m *Module) reset(ctx context.Context, sub string) error {
	for range 2 {
		if err := m.st.Delete(ctx, keyRecord+sub); err != nil {
			return err
		}
		if moved, err := m.st.Adopt(ctx, keyRecord+sub, keyRecord+sub, 0, true); err != nil || !moved {
			return err
		}
	}
	return m.st.Delete(ctx, keyFailures+sub)
}

// ForgetUser removes the user's TOTP (the user is being deleted).
func (m *Module) ForgetUser(ctx context.Context, sub string) error { return m.reset(ctx, sub) }

// Actions: "reset".
func (m *Module) Actions() []chain.Action {
	return []chain.Action{{Name: "reset", Description: "Remove the user's TOTP; they enrol again at their next login", ForgetDevices: true}}
}

// Act runs an admin action.
func (m *Module) Act(ctx context.Context, action string, u users.User) (string, error) {
	if action != "reset" {
		return "", fmt.Errorf("totp has no action %q", action)
	}
	if err := m.reset(ctx, u.Subject); err != nil {
		return "", err
	}
	m.audit.Record(ctx, audit.Event{Event: audit.FactorReset, User: u.Username, Subject: u.Subject, Module: m.name})
	return "TOTP of " + u.Username + " removed", nil
}

// Prompt asks for a code, or walks through enrolment.
func (m *Module) Prompt(ctx context.Context, a *chain.Attempt) (chain.Prompt, error) {
	if a.Subject == "" {
		return chain.Prompt{}, errors.New("totp cannot be the first module of a chain: put it after a module that identifies the user")
	}
	enrolled, err := m.enrolled(ctx, a.Subject)
	if err != nil {
		return chain.Prompt{}, err
	}
	code := chain.Field{Name: "code", Label: "Code", Type: "text", InputMode: "numeric", Autocomplete: "one-time-code", Autofocus: true}
	if enrolled {
		return chain.Prompt{Title: "Two-step verification", Submit: "Verify", Fields: []chain.Field{code},
			Intro: "Enter the 6-digit code from your authenticator app, or one of your recovery codes."}, nil
	}
	p, err := m.pendingFor(ctx, a)
	if err != nil {
		return chain.Prompt{}, err
	}
	secret, err := m.open(ctx, p.Secret, a.Subject)
	if err != nil {
		return chain.Prompt{}, err
	}
	u, err := m.users.Get(ctx, a.Subject)
	if err != nil {
		return chain.Prompt{}, err
	}
	key, err := otp.NewKeyFromURL((&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + m.issuer + ":" + u.Username,
		RawQuery: url.Values{"secret": {secret}, "issuer": {m.issuer}, "period": {"30"}, "digits": {"6"}, "algorithm": {"SHA1"}}.Encode()}).String())
	if err != nil {
		return chain.Prompt{}, err
	}
	img, err := key.Image(220, 220)
	if err != nil {
		return chain.Prompt{}, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return chain.Prompt{}, err
	}
	var html strings.Builder
	fmt.Fprintf(&html, `<figure class="qr"><img src="data:image/png;base64,%s" width="220" height="220" alt="QR code for your authenticator app"></figure>`,
		base64.StdEncoding.EncodeToString(buf.Bytes()))
	fmt.Fprintf(&html, `<p class="hint">Cannot scan? Enter this key: <code id="totp-secret">%s</code></p>`, template.HTMLEscapeString(secret))
	html.WriteString(`<p>Recovery codes — keep them somewhere safe; each works once if you lose your phone:</p><ul class="codes" id="recovery-codes">`)
	for _, c := range p.Recovery {
		fmt.Fprintf(&html, "<li><code>%s</code></li>", template.HTMLEscapeString(c))
	}
	html.WriteString("</ul>")
	return chain.Prompt{Title: "Set up two-step verification", Submit: "Turn on", Fields: []chain.Field{code},
		Intro: "Scan the QR code with an authenticator app, then enter the 6-digit code it shows.",
		HTML:  template.HTML(html.String())}, nil
}

func (m *Module) pendingFor(ctx context.Context, a *chain.Attempt) (pending, error) {
	var p pending
	b, err := m.st.Get(ctx, keyPending+a.ID)
	if err == nil {
		return p, json.Unmarshal(b, &p)
	} else if !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	raw := make([]byte, 20)
	rand.Read(raw)
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
	if p.Secret, err = m.seal(ctx, secret, a.Subject); err != nil {
		return p, err
	}
	for range recoveryCount {
		p.Recovery = append(p.Recovery, newRecoveryCode())
	}
	b, _ = json.Marshal(p)
	if err := m.st.Create(ctx, keyPending+a.ID, b, 30*time.Minute); errors.Is(err, store.ErrExists) {
		return m.pendingFor(ctx, a) // another tab won: use its secret
	} else if err != nil {
		return p, err
	}
	return p, nil
}

func newRecoveryCode() string {
	b := make([]byte, 5)
	rand.Read(b)
	s := strings.ToLower(base32.StdEncoding.EncodeToString(b)) // 8 characters
	return s[:4] + "-" + s[4:]
}

func hashCode(c string) string {
	h := sha256.Sum256([]byte(c))
	return hex.EncodeToString(h[:])
}

// errReplay is a code of a time step already used.
var errReplay = errors.New("replayed")

// Verify checks a code (or a recovery code), or confirms enrolment.
func (m *Module) Verify(ctx context.Context, a *chain.Attempt, form url.Values) (chain.Identity, error) {
	sub, err := m.verify(ctx, a, form)
	if err != nil {
		return chain.Identity{}, err
	}
	return chain.Identity{Subject: sub, AMR: []string{chain.AMROTP}}, nil
}

func (m *Module) verify(ctx context.Context, a *chain.Attempt, form url.Values) (string, error) {
	sub := a.Subject
	if sub == "" {
		return "", errors.New("totp needs an identified user")
	}
	code := strings.ToLower(strings.Join(strings.Fields(form.Get("code")), ""))
	if code == "" || len(code) > 32 {
		return "", chain.Reject("Enter the code.")
	}
	if n, _ := m.failures(ctx, sub); n >= maxFailures {
		return "", chain.Reject("Too many wrong codes. Wait 15 minutes, then try again.")
	}
	enrolled, err := m.enrolled(ctx, sub)
	if err != nil {
		return "", err
	}
	if !enrolled {
		return m.confirm(ctx, a, code)
	}
	now := m.now()
	// The cipher is fetched before Update: fn must not touch the store.
	g, err := m.aead(ctx)
	if err != nil {
		return "", err
	}
	var used bool
	err = m.st.Update(ctx, keyRecord+sub, 0, func(old []byte) ([]byte, error) {
		used = false
		if old == nil {
			return nil, store.ErrNotFound
		}
		var rec record
		if err := json.Unmarshal(old, &rec); err != nil {
			return nil, err
		}
		secret, err := openWith(g, rec.Secret, sub)
		if err != nil {
			return nil, err
		}
		if step, ok := matchStep(secret, code, now); ok {
			if step <= rec.LastStep {
				return nil, errReplay
			}
			rec.LastStep, used = step, true
			return json.Marshal(rec)
		}
		h := hashCode(code)
		for i, r := range rec.Recovery {
			if subtle.ConstantTimeCompare([]byte(r), []byte(h)) == 1 {
				rec.Recovery = append(rec.Recovery[:i:i], rec.Recovery[i+1:]...)
				used = true
				return json.Marshal(rec)
			}
		}
		return old, nil
	})
	switch {
	case errors.Is(err, errReplay):
		m.fail(ctx, sub)
		return "", chain.Reject("This code was already used. Wait for the next code, then enter it.")
	case err != nil:
		return "", err
	case !used:
		m.fail(ctx, sub)
		return "", chain.Reject("Wrong code.")
	}
	_ = m.st.Delete(ctx, keyFailures+sub)
	return sub, nil
}

// confirm finishes enrolment with the first code.
func (m *Module) confirm(ctx context.Context, a *chain.Attempt, code string) (string, error) {
	b, err := m.st.Get(ctx, keyPending+a.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", chain.Reject("The set-up expired. Scan the new QR code.")
	} else if err != nil {
		return "", err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil {
		return "", err
	}
	secret, err := m.open(ctx, p.Secret, a.Subject)
	if err != nil {
		return "", err
	}
	step, ok := matchStep(secret, code, m.now())
	if !ok {
		m.fail(ctx, a.Subject)
		return "", chain.Reject("Wrong code. Check the time on your phone and enter the code it shows now.")
	}
	rec := record{Secret: p.Secret, LastStep: step, EnrolledAt: m.now()}
	for _, c := range p.Recovery {
		rec.Recovery = append(rec.Recovery, hashCode(c))
	}
	rb, _ := json.Marshal(rec)
	if err := m.st.Create(ctx, keyRecord+a.Subject, rb, 0); errors.Is(err, store.ErrExists) {
		return "", chain.Reject("Two-step verification was set up meanwhile (another tab?). Enter a code from that set-up.")
	} else if err != nil {
		return "", err
	}
	_ = m.st.Delete(ctx, keyPending+a.ID)
	_ = m.st.Delete(ctx, keyFailures+a.Subject)
	m.audit.Record(ctx, audit.Event{Event: audit.FactorEnrolled, Subject: a.Subject, Module: m.name})
	return a.Subject, nil
}

// matchStep finds the time step (±1 for clock skew) whose code is code.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	opts := totp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	step := now.Unix() / period
	for _, d := range []int64{0, -1, 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((step+d)*period, 0), opts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step + d, true
		}
	}
	return 0, false
}

func (m *Module) failures(ctx context.Context, sub string) (int, error) {
	b, err := m.st.Get(ctx, keyFailures+sub)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(b))
}

func (m *Module) fail(ctx context.Context, sub string) {
	_ = m.st.Update(ctx, keyFailures+sub, failWindow, func(old []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(old))
		return []byte(strconv.Itoa(n + 1)), nil
	})
}

// aead returns the cipher for secrets. Its key is the one from before
// the instance had a store of its own when there was one (copied: other
// instances may still need it), else one made on first use.
func (m *Module) aead(ctx context.Context) (cipher.AEAD, error) {
	key, err := m.st.Get(ctx, keyCipher)
	if errors.Is(err, store.ErrNotFound) {
		if _, err = m.st.Adopt(ctx, keyCipher, keyCipher, 0, false); err == nil {
			key = make([]byte, 32)
			rand.Read(key)
			if err = m.st.Create(ctx, keyCipher, key, 0); errors.Is(err, store.ErrExists) {
				key, err = m.st.Get(ctx, keyCipher)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("totp encryption key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts a secret for sub (AES-256-GCM, sub as additional data).
func (m *Module) seal(ctx context.Context, secret, sub string) (string, error) {
	g, err := m.aead(ctx)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return base64.RawStdEncoding.EncodeToString(g.Seal(nonce, nonce, []byte(secret), []byte(sub))), nil
}

func (m *Module) open(ctx context.Context, sealed, sub string) (string, error) {
	g, err := m.aead(ctx)
	if err != nil {
		return "", err
	}
	return openWith(g, sealed, sub)
}

func openWith(g cipher.AEAD, sealed, sub string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(b) < g.NonceSize() {
		return "", errors.New("totp secret is corrupt")
	}
	pt, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], []byte(sub))
	if err != nil {
		return "", errors.New("totp secret cannot be decrypted (wrong key or tampered record)")
	}
	return string(pt), nil
}

var (
	_ chain.FormModule   = (*Module)(nil)
	_ chain.Applicable   = (*Module)(nil)
	_ chain.AdminActions = (*Module)(nil)
)
