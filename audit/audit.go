// Package audit writes the security trail: one structured log line per
// security event (a login that succeeded or failed, a step-up, a ban, a
// factor enrolled or reset, a password changed, a session ended and why,
// a logout given up, an admin action, an unknown client, a bad redirect
// URI or client secret), under its own logger name so admins can route
// it to a file, fail2ban or a SIEM.
//
// Every line has the field "event" and, where known: user, sub,
// attempted (the login name typed), client, ip, module, reason, sid,
// acr, amr, key, until, admin, target. The README lists them.
//
// It imports nothing of Gatehouse.
package audit

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"
)

// Events.
const (
	LoginSucceeded   = "login_succeeded"
	LoginFailed      = "login_failed"
	StepUp           = "step_up"
	RateLimited      = "rate_limited" // an attempt refused by a delay or a ban; no secret was checked
	Banned           = "banned"       // a key reached its limit
	BanLifted        = "ban_lifted"
	FactorEnrolled   = "factor_enrolled"
	FactorReset      = "factor_reset"
	PasswordChanged  = "password_changed"
	SessionEnded     = "session_ended"
	LogoutGivenUp    = "logout_delivery_given_up"
	AdminAction      = "admin_action"
	UnknownClient    = "unknown_client"
	BadRedirectURI   = "bad_redirect_uri"
	BadClientSecret  = "bad_client_secret"
	CodeReplayed     = "code_replayed"
	Busy             = "busy"                 // refused because too many password checks were running
	RefreshReused    = "refresh_token_reused" // an old refresh token came back; its family is revoked
	TokenMisuse      = "token_misuse"         // a client presented another client's token or assertion
	ConsentGiven     = "consent_given"
	ConsentRevoked   = "consent_revoked"
	ClientRegistered = "client_registered" // dynamic registration, update or deletion (reason says which)
	UserCodeFailed   = "user_code_failed"  // a device user code typed at the verification page was wrong or expired
	DeviceAuthorized = "device_authorized" // a person allowed a device (reason "allowed") or refused it ("denied")
	MailGivenUp      = "mail_given_up"     // a message could not be delivered (target: the recipient; reason: template and error)
	LinkMailed       = "link_mailed"       // a chain module mailed a sign-in link (reason says when no account had the address)
	PasswordReset    = "password_reset"    // "password forgotten": reason "requested" (a link mailed) or "completed" (a new password set)
	AccountCreated   = "account_created"   // a person signed up (reason: active, or inactive until activated)
	AccountActivated = "account_activated" // an account awaiting activation was activated (reason says how)
	// ActivationRefused: an account could not be activated because
	// another account has its address (reason says whether its owner was
	// told).
	ActivationRefused = "activation_refused"
	// CredentialAdded: on the account page, a user added a way in
	// (module: which; a passkey, a linked identity); CredentialRemoved:
	// removed one (target: the module's id of it).
	CredentialAdded   = "credential_added"
	CredentialRemoved = "credential_removed"
	// SETGivenUp: a Security Event Token could not be delivered to a
	// receiver (target: its URL; reason: the receiver's error or the last
	// failure).
	SETGivenUp = "set_delivery_given_up"
	// Passkeys (chain kind webauthn); target is the credential id.
	PasskeyRegistered = "passkey_registered"
	PasskeyUsed       = "passkey_used"
	PasskeyRemoved    = "passkey_removed"       // reason: by the user or by an administrator
	PasskeyRefused    = "passkey_refused"       // an assertion or registration refused (reason says why)
	PasskeyCloned     = "passkey_clone_warning" // its signature counter went backwards
	// IdentityLinked: an identity at another issuer was linked to an
	// account (reason: a just-in-time account, proven by signing in to
	// the account, or the account page); target names it (issuer and
	// subject).
	IdentityLinked = "identity_linked"
	// LinkRefused: an identity at another issuer was not linked (its
	// address names an account it is not linked to, so the person was
	// asked to sign in to it; or it is linked to another account).
	LinkRefused = "link_refused"
	// UpstreamLogout: a remote provider's back-channel logout ended
	// sessions (reason: how many); LogoutTokenRefused: a logout token
	// that did not verify (reason says why).
	UpstreamLogout     = "upstream_logout"
	LogoutTokenRefused = "logout_token_refused"
)

// Reasons of the admin_action lines the admin console writes for changes
// to an account; Security Event Tokens are made from them (as from the
// admin API's "POST /gatehouse/users…").
const (
	ConsoleUserCreated  = "console create user"
	ConsoleUserChanged  = "console groups user"
	ConsoleUserDisabled = "console disable user"
	ConsoleUserEnabled  = "console enable user"
	ConsoleUserDeleted  = "console delete user"
)

// Event is one line of the trail; empty fields are left out.
type Event struct {
	Event     string
	User      string // username
	Subject   string
	Attempted string // the login name typed, when no account is known
	Client    string
	IP        string
	Module    string
	Reason    string
	SID       string
	ACR       string
	AMR       []string
	Key       string    // a regulation key
	Until     time.Time // end of a ban
	Admin     string    // who called the admin API
	Target    string    // what an admin action was on
	// Modules passed in a sign-in (login_succeeded, step_up); counted
	// per module (ByModule), not written (the reason names them).
	Modules []string
}

// Key names a count: an event, and the module it concerns ("" for
// none).
type Key struct{ Event, Module string }

type ipKey struct{}

// WithIP returns ctx carrying the client address of the request it
// serves: events recorded under it without an IP get this one (a module
// records its own events without seeing the request).
func WithIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

// Log writes events. The zero value and nil discard them.
type Log struct {
	l      *slog.Logger
	mu     sync.Mutex
	counts map[string]int64
	// byModule counts events per module: a pass in several modules
	// counts once for each.
	byModule map[Key]int64
	subs     []func(context.Context, Event)
}

// Subscribe calls fn with every event recorded from now on, after its
// line is written, in the goroutine that recorded it (fn must be quick
// and must not block). It is how other parts learn what happened (the
// Security Event Tokens) without a call at every place an event occurs.
func (a *Log) Subscribe(fn func(context.Context, Event)) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.subs = append(a.subs, fn)
	a.mu.Unlock()
}

// New returns a Log writing to l.
func New(l *slog.Logger) *Log {
	return &Log{l: l, counts: map[string]int64{}, byModule: map[Key]int64{}}
}

// Record writes e as one line (level INFO; WARN for failures, refusals
// and bans) and counts it.
func (a *Log) Record(ctx context.Context, e Event) {
	if a == nil || a.l == nil {
		return
	}
	if e.IP == "" {
		e.IP, _ = ctx.Value(ipKey{}).(string)
	}
	a.mu.Lock()
	subs := a.subs
	a.counts[e.Event]++
	if len(e.Modules) == 0 {
		a.byModule[Key{e.Event, e.Module}]++
	}
	for _, m := range e.Modules {
		a.byModule[Key{e.Event, m}]++
	}
	a.mu.Unlock()
	attrs := []slog.Attr{slog.String("event", e.Event)}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("user", e.User)
	add("sub", e.Subject)
	add("attempted", e.Attempted)
	add("client", e.Client)
	add("ip", e.IP)
	add("module", e.Module)
	add("reason", e.Reason)
	add("sid", e.SID)
	add("acr", e.ACR)
	if len(e.AMR) > 0 {
		attrs = append(attrs, slog.String("amr", strings.Join(e.AMR, " ")))
	}
	add("key", e.Key)
	if !e.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", e.Until.UTC()))
	}
	add("admin", e.Admin)
	add("target", e.Target)
	level := slog.LevelInfo
	switch e.Event {
	case LoginFailed, RateLimited, Banned, UnknownClient, BadRedirectURI, BadClientSecret, CodeReplayed, Busy, LogoutGivenUp,
		RefreshReused, TokenMisuse, UserCodeFailed, MailGivenUp, ActivationRefused, SETGivenUp, PasskeyRefused, PasskeyCloned,
		LinkRefused, LogoutTokenRefused:
		level = slog.LevelWarn
	}
	a.l.LogAttrs(ctx, level, "gatehouse security event", attrs...)
	for _, fn := range subs {
		fn(ctx, e)
	}
}

// ByModule returns how many events of each kind were recorded since
// start, per module.
func (a *Log) ByModule() map[Key]int64 {
	if a == nil {
		return map[Key]int64{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.byModule)
}

// Counts returns how many events of each kind were recorded since start.
func (a *Log) Counts() map[string]int64 {
	if a == nil {
		return map[string]int64{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.counts)
}
