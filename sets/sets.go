package sets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/internal/netguard"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Signer signs JWT claims with the provider's active key.
type Signer interface {
	SignClaims(typ string, claims any) (string, error)
}

// Config configures a Service.
type Config struct {
	Store     store.Store
	Issuer    string
	Signer    Signer
	Receivers []Receiver
	// Lookup finds the account an event is about (its email, profile
	// and state). Without it SETs name the subject only.
	Lookup Lookup
	// MaxQueued bounds the SETs waiting (default 10000); beyond it the
	// oldest are dropped with an error line.
	MaxQueued int
	// Attempts (default 8) and Backoff (default 2s, doubled after each
	// failure, at most an hour) shape retries.
	Attempts int
	Backoff  time.Duration
	// HTTPClient posts to receivers with private_networks. Default: 5s
	// timeout, no redirect followed (the configured URL is the
	// receiver; a redirect would carry the SET anywhere).
	HTTPClient *http.Client
	// PublicHTTPClient posts to the others. Default: as HTTPClient,
	// reaching public addresses only.
	PublicHTTPClient *http.Client
	Now              func() time.Time
	Logger           *slog.Logger
	Audit            *audit.Log
}

// Stats counts SETs since start.
type Stats struct {
	Queued, Delivered, Failed, GivenUp, Dropped atomic.Int64
}

// Service turns audit events into queued SETs and delivers them.
type Service struct {
	cfg   Config
	wake  chan struct{}
	Stats Stats
}

// New checks the receivers and returns the service; Observe is its
// audit subscriber and Run works its queue.
func New(cfg Config) (*Service, error) {
	if err := ValidateAll(cfg.Receivers); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Signer == nil || cfg.Issuer == "" {
		return nil, fmt.Errorf("security event tokens need a store, a signer and the issuer")
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 10000
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 8
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: postTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.PublicHTTPClient == nil {
		cfg.PublicHTTPClient = netguard.Client(postTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

type txnKey struct{}

// WithTxn returns ctx marking every event recorded under it as one
// transaction: their SETs carry the same txn claim (RFC 8417 §2.2), so
// a receiver sees that a deleted account's sessions ended with it.
func WithTxn(ctx context.Context) context.Context {
	return context.WithValue(ctx, txnKey{}, randomID(16))
}

// Observe is the audit subscriber: it queues a SET for each receiver
// that wants e. It never fails the request that recorded e; what cannot
// be queued is logged.
func (s *Service) Observe(ctx context.Context, e audit.Event) {
	kind := classify(e)
	if kind == "" || !s.wanted(kind) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	p := Person{Subject: e.Subject, Username: e.User}
	if e.Event == audit.AdminAction && p.Username == "" {
		p.Username = strings.TrimPrefix(e.Target, "user:")
	}
	found := false
	if s.cfg.Lookup != nil {
		var q Person
		if q, found = s.cfg.Lookup(ctx, p.Subject, p.Username); found {
			p = q
		}
	}
	if p.Subject == "" {
		s.cfg.Logger.Warn("gatehouse sets: an event names no account; no SET sent", "event", e.Event, "user", e.User)
		return
	}
	if kind == UserDisabled && found && !p.Disabled {
		kind = UserEnabled // the same admin command enables
	}
	now := s.cfg.Now()
	o := s.describe(kind, e, p, now)
	txn, _ := ctx.Value(txnKey{}).(string)
	for _, r := range s.cfg.Receivers {
		if !r.wants(o.kind) {
			continue
		}
		claims := map[string]any{
			"iss": s.cfg.Issuer, "aud": r.audience(), "iat": now.Unix(),
			"sub_id": s.subjectID(o, p), "events": map[string]any{o.typ: o.payload},
		}
		if txn != "" {
			claims["txn"] = txn
		}
		if err := s.enqueue(ctx, r.URL, o.kind, claims); err != nil {
			s.cfg.Logger.Error("gatehouse sets: queueing a security event token", "receiver", r.URL, "event", o.kind, "error", err)
		}
	}
}

func (s *Service) wanted(kind string) bool {
	return slices.ContainsFunc(s.cfg.Receivers, func(r Receiver) bool { return r.wants(kind) })
}

// Token signs claims as a SET: typ secevent+jwt (RFC 8417 §2.3).
func (s *Service) Token(claims json.RawMessage) (string, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(claims))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("reading queued claims: %w", err)
	}
	return s.cfg.Signer.SignClaims(TokenType, wholeNumbers(m))
}

// wholeNumbers turns the json.Numbers of v into int64 (iat,
// event_timestamp) or float64: the JWT library writes a json.Number as
// a string, and a float64 time in exponent form.
func wholeNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = wholeNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = wholeNumbers(e)
		}
	}
	return v
}

func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
