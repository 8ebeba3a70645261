package regulate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Rule is the regulation of one kind of key.
type Rule struct {
	// MaxRetries failures within FindTime ban the key.
	MaxRetries int `json:"max_retries,omitempty"`
	// FindTime is the window failures are counted in.
	FindTime time.Duration `json:"find_time,omitempty"`
	// BanTime is the first ban; each further ban within a day doubles it,
	// up to MaxBanTime.
	BanTime    time.Duration `json:"ban_time,omitempty"`
	MaxBanTime time.Duration `json:"max_ban_time,omitempty"`
	// FreeRetries failures are free; after them each attempt waits Delay,
	// doubled with each further failure (at most a minute).
	FreeRetries int           `json:"free_retries,omitempty"`
	Delay       time.Duration `json:"delay,omitempty"`
}

// Kinds of keys.
const (
	KindUser   = "user"   // an account (or a login name no account has)
	KindIP     = "ip"     // a client address (an IPv6 /64)
	KindClient = "client" // an OAuth client authenticating at the token endpoint
)

// Policy is a rule per kind of key.
type Policy map[string]Rule

// DefaultPolicy: a person who mistypes twice is not slowed; a guesser
// gets five tries per account and twenty per address in ten minutes,
// then bans of 5 and 10 minutes that double with each further ban.
func DefaultPolicy() Policy {
	return Policy{
		KindUser:   {MaxRetries: 5, FindTime: 10 * time.Minute, BanTime: 5 * time.Minute, MaxBanTime: 24 * time.Hour, FreeRetries: 2, Delay: 2 * time.Second},
		KindIP:     {MaxRetries: 20, FindTime: 10 * time.Minute, BanTime: 10 * time.Minute, MaxBanTime: 24 * time.Hour, FreeRetries: 10, Delay: time.Second},
		KindClient: {MaxRetries: 10, FindTime: 10 * time.Minute, BanTime: 5 * time.Minute, MaxBanTime: time.Hour, FreeRetries: 3, Delay: time.Second},
	}
}

// Validate checks every rule.
func (p Policy) Validate() error {
	for kind, r := range p {
		switch kind {
		case KindUser, KindIP, KindClient:
		default:
			return fmt.Errorf("regulation: unknown key kind %q (user, ip, client)", kind)
		}
		if r.MaxRetries < 1 || r.FindTime <= 0 || r.BanTime <= 0 || r.MaxBanTime < r.BanTime || r.FreeRetries < 0 || r.Delay < 0 {
			return fmt.Errorf("regulation %s: max_retries >= 1, positive find_time and ban_time, max_ban_time >= ban_time, free_retries and delay not negative", kind)
		}
		if r.FreeRetries >= r.MaxRetries {
			return fmt.Errorf("regulation %s: free_retries (%d) must be less than max_retries (%d)", kind, r.FreeRetries, r.MaxRetries)
		}
	}
	return nil
}

// Key is what failures are counted on.
type Key struct{ Kind, Value string }

func (k Key) String() string { return k.Kind + ":" + k.Value }

// ParseKey reads "kind:value" (as Key.String writes it).
func ParseKey(s string) (Key, error) {
	kind, v, ok := strings.Cut(s, ":")
	if !ok || v == "" || (kind != KindUser && kind != KindIP && kind != KindClient) {
		return Key{}, fmt.Errorf("a key is user:<subject or name>, ip:<address> or client:<id>, not %q", s)
	}
	if kind == KindIP {
		return IP(v), nil
	}
	return Key{kind, v}, nil
}

// User is the key of an account: its subject when the account exists,
// else the login name tried (folded), so unknown names are regulated
// the same way and cannot be told apart.
func User(subjectOrName string) Key { return Key{KindUser, subjectOrName} }

// UnknownName is the key of a login name no account has.
func UnknownName(name string) Key {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(name))))
	return Key{KindUser, "name-" + hex.EncodeToString(sum[:12])}
}

// Client is the key of an OAuth client id (admins ban a client with it).
func Client(id string) Key { return Key{KindClient, id} }

// ClientFrom is the key of an OAuth client id tried from one address
// (as IP keys it): failures are counted there, so a stranger guessing a
// client's secret bans himself, not the client.
func ClientFrom(id, addr string) Key { return Key{KindClient, id + "@" + IP(addr).Value} }

// IP is the key of a client address: IPv4 as is, IPv6 by its /64 (one
// host has a whole /64 to pick from).
func IP(addr string) Key {
	ip := net.ParseIP(strings.Trim(addr, "[]"))
	switch {
	case ip == nil:
		return Key{KindIP, addr}
	case ip.To4() != nil:
		return Key{KindIP, ip.To4().String()}
	default:
		return Key{KindIP, ip.Mask(net.CIDRMask(64, 128)).String() + "/64"}
	}
}

type ctxKey struct{}

// WithClientIP returns ctx carrying the client address the server
// determined (Caddy's, which honours its trusted_proxies).
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ctxKey{}, ip)
}

// IPFromContext is the client address WithClientIP put in ctx, "" when
// none (for code that has the request's context but not the request:
// the chain's modules, whose engine puts it there).
func IPFromContext(ctx context.Context) string {
	ip, _ := ctx.Value(ctxKey{}).(string)
	return ip
}

// ClientIP is the client address of r: the one WithClientIP put in its
// context, else the peer address. Never a header a client can set.
func ClientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(ctxKey{}).(string); ok && ip != "" {
		return ip
	}
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// record is what the store keeps for a key.
type record struct {
	Failures    int       `json:"f,omitempty"`
	WindowStart time.Time `json:"w,omitzero"`
	NextAt      time.Time `json:"n,omitzero"`
	BannedUntil time.Time `json:"b,omitzero"`
	Bans        int       `json:"bans,omitempty"`
	LastBan     time.Time `json:"lb,omitzero"`
	// Manual: an admin set the ban; it is not doubled, and only an admin
	// or its end lifts it.
	Manual bool `json:"m,omitempty"`
}

// Blocked says an attempt may not be checked now.
type Blocked struct {
	Key        Key
	RetryAfter time.Duration
	// Banned: a ban (else a delay between attempts).
	Banned bool
}

// Ban is a key's active ban.
type Ban struct {
	Key    Key       `json:"key"`
	Until  time.Time `json:"until"`
	Bans   int       `json:"bans"`
	Manual bool      `json:"manual,omitempty"`
}

// Limiter keeps the counters.
type Limiter struct {
	st     store.Store
	policy Policy
	now    func() time.Time
}

const (
	// maxDelay caps the wait between attempts; beyond it a ban says more.
	maxDelay  = time.Minute
	keyPrefix = "reg:"
	setBans   = "reg-bans"
	// memory is how long a key's record (its ban count) is kept after its
	// last event.
	memory = 24 * time.Hour
)

// New returns a Limiter over st; policy nil means DefaultPolicy.
func New(st store.Store, policy Policy, now func() time.Time) (*Limiter, error) {
	if policy == nil {
		policy = DefaultPolicy()
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{st: st, policy: policy, now: now}, nil
}

// errStop ends an update without writing.
var errStop = errors.New("stop")

func (l *Limiter) update(ctx context.Context, k Key, fn func(r *record, now time.Time) error) error {
	return l.st.Update(ctx, keyPrefix+k.String(), memory+l.policy[k.Kind].MaxBanTime, func(old []byte) ([]byte, error) {
		var r record
		if old != nil {
			if err := json.Unmarshal(old, &r); err != nil {
				r = record{} // a corrupt counter starts over
			}
		}
		if err := fn(&r, l.now()); err != nil {
			return nil, err
		}
		return json.Marshal(r)
	})
}

// Begin says whether an attempt involving keys may be checked now. When
// it may (nil), the attempt already counts as a failure on each key, so
// attempts sent at once cannot slip past the limit; Succeed takes it
// back, Fail confirms it. Keys of kinds the policy does not regulate
// are ignored.
func (l *Limiter) Begin(ctx context.Context, keys ...Key) (*Blocked, error) {
	for _, k := range keys {
		if b, err := l.blocked(ctx, k); b != nil || err != nil {
			return b, err
		}
	}
	var counted []Key
	for _, k := range keys {
		rule, ok := l.policy[k.Kind]
		if !ok {
			continue
		}
		var b *Blocked
		err := l.update(ctx, k, func(r *record, now time.Time) error {
			b = nil
			if now.Before(r.BannedUntil) {
				b = &Blocked{Key: k, RetryAfter: r.BannedUntil.Sub(now), Banned: true}
				return errStop
			}
			if now.Before(r.NextAt) {
				b = &Blocked{Key: k, RetryAfter: r.NextAt.Sub(now)}
				return errStop
			}
			if now.Sub(r.WindowStart) > rule.FindTime {
				r.Failures, r.WindowStart = 0, now
			}
			if r.Failures >= rule.MaxRetries {
				// Attempts already in flight fill the window: no more.
				b = &Blocked{Key: k, RetryAfter: rule.Delay + time.Second}
				return errStop
			}
			r.Failures++
			if r.Failures > rule.FreeRetries {
				r.NextAt = now.Add(min(rule.Delay<<min(r.Failures-rule.FreeRetries-1, 16), maxDelay))
			}
			return nil
		})
		if errors.Is(err, errStop) {
			_ = l.undo(ctx, counted)
			return b, nil
		}
		if err != nil {
			_ = l.undo(ctx, counted)
			return nil, fmt.Errorf("regulation: %w", err)
		}
		counted = append(counted, k)
	}
	return nil, nil
}

// blocked reads k without counting.
func (l *Limiter) blocked(ctx context.Context, k Key) (*Blocked, error) {
	if _, ok := l.policy[k.Kind]; !ok {
		return nil, nil
	}
	b, err := l.st.Get(ctx, keyPrefix+k.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("regulation: %w", err)
	}
	var r record
	if json.Unmarshal(b, &r) != nil {
		return nil, nil
	}
	now := l.now()
	switch {
	case now.Before(r.BannedUntil):
		return &Blocked{Key: k, RetryAfter: r.BannedUntil.Sub(now), Banned: true}, nil
	case now.Before(r.NextAt):
		return &Blocked{Key: k, RetryAfter: r.NextAt.Sub(now)}, nil
	}
	return nil, nil
}

// Check says whether an attempt involving keys may be checked now,
// without counting it: for callers that serialise their attempts
// themselves and count only failures (Count), so that a right
// credential costs no write.
func (l *Limiter) Check(ctx context.Context, keys ...Key) (*Blocked, error) {
	for _, k := range keys {
		if b, err := l.blocked(ctx, k); b != nil || err != nil {
			return b, err
		}
	}
	return nil, nil
}

// Count records a failed attempt that Begin did not count (see Check):
// it counts on each key, sets the delay before the next attempt, and
// bans a key that reached its MaxRetries. It returns the new bans.
func (l *Limiter) Count(ctx context.Context, keys ...Key) ([]Ban, error) {
	for _, k := range keys {
		rule, ok := l.policy[k.Kind]
		if !ok {
			continue
		}
		err := l.update(ctx, k, func(r *record, now time.Time) error {
			if now.Sub(r.WindowStart) > rule.FindTime {
				r.Failures, r.WindowStart = 0, now
			}
			r.Failures++
			if r.Failures > rule.FreeRetries {
				r.NextAt = now.Add(min(rule.Delay<<min(r.Failures-rule.FreeRetries-1, 16), maxDelay))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("regulation: %w", err)
		}
	}
	return l.Fail(ctx, keys...)
}

// Fail confirms that the attempt Begin counted failed. A key that
// reached its MaxRetries is banned; Fail returns the new bans.
func (l *Limiter) Fail(ctx context.Context, keys ...Key) ([]Ban, error) {
	var bans []Ban
	for _, k := range keys {
		rule, ok := l.policy[k.Kind]
		if !ok {
			continue
		}
		var ban *Ban
		err := l.update(ctx, k, func(r *record, now time.Time) error {
			ban = nil
			if r.Failures < rule.MaxRetries || now.Before(r.BannedUntil) {
				return nil
			}
			if now.Sub(r.LastBan) > memory {
				r.Bans = 0
			}
			r.Bans++
			d := min(rule.BanTime<<min(r.Bans-1, 16), rule.MaxBanTime)
			r.BannedUntil, r.LastBan, r.Manual = now.Add(d), now, false
			r.Failures, r.WindowStart, r.NextAt = 0, now, time.Time{}
			ban = &Ban{Key: k, Until: r.BannedUntil, Bans: r.Bans}
			return nil
		})
		if err != nil {
			return bans, fmt.Errorf("regulation: %w", err)
		}
		if ban != nil {
			bans = append(bans, *ban)
			if err := l.st.SetAdd(ctx, setBans, k.String()); err != nil {
				return bans, fmt.Errorf("regulation: %w", err)
			}
		}
	}
	return bans, nil
}

// Succeed takes back the failure Begin counted: an account's failures
// are forgotten (a person who got in is not slowed); an address's or a
// client's count drops by one. Bans stay.
func (l *Limiter) Succeed(ctx context.Context, keys ...Key) error {
	return l.undo(ctx, keys)
}

func (l *Limiter) undo(ctx context.Context, keys []Key) error {
	for _, k := range keys {
		rule, ok := l.policy[k.Kind]
		if !ok {
			continue
		}
		err := l.update(ctx, k, func(r *record, now time.Time) error {
			if k.Kind == KindUser {
				r.Failures = 0
			} else if r.Failures > 0 {
				r.Failures--
			}
			if r.Failures <= rule.FreeRetries {
				r.NextAt = time.Time{}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("regulation: %w", err)
		}
	}
	return nil
}
