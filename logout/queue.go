package logout

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/gatehouse-idp/gatehouse/internal/netguard"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): every
// receiver of a session (a client's backchannel_logout_uri, a gate's
// upstream hook) gets a signed logout token, POSTed in the background.
// Deliveries are kept in the store (they survive a restart), retried with
// exponential back-off, and given up with a log line.

// BackchannelEvent is the events member of a logout token.
const BackchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// TokenType is the typ header of logout tokens.
const TokenType = "logout+jwt"

const (
	keyDelivery = "bcl:"
	setQueue    = "bcl-queue"
	// lease is how long a claimed delivery is left to its worker.
	lease       = time.Minute
	deliveryTTL = 24 * time.Hour
)

// Signer signs JWT claims with the provider's active key.
type Signer interface {
	SignClaims(typ string, claims any) (string, error)
}

// Notice is one logout token to deliver: to URI, for audience Audience (a
// client id, or an upstream's origin), about Subject and SID.
type Notice struct {
	URI      string `json:"uri"`
	Audience string `json:"aud"`
	Subject  string `json:"sub"`
	SID      string `json:"sid,omitempty"`
	// Untrusted: the receiver was named by someone not trusted (a client
	// that registered itself); it is reached on public addresses only.
	Untrusted bool `json:"untrusted,omitempty"`
}

// delivery is a queued notice with its progress.
type delivery struct {
	Notice
	ID       string    `json:"id"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at"`
	Created  time.Time `json:"created"`
}

// Stats counts deliveries since start.
type Stats struct {
	Delivered, Failed, GivenUp atomic.Int64
}

// QueueConfig configures a Queue.
type QueueConfig struct {
	Store  store.Store
	Issuer string
	Signer Signer
	// HTTPClient posts logout tokens. Default: 5s timeout, no redirect
	// followed (the registered URI is the receiver; a 307 would carry the
	// POST to any address, the provider's own machine included).
	HTTPClient *http.Client
	// UntrustedHTTPClient posts to untrusted receivers. Default: as
	// HTTPClient, reaching public addresses only.
	UntrustedHTTPClient *http.Client
	// Attempts (default 8) and Backoff (default 2s, doubled after each
	// failure, at most an hour) shape retries.
	Attempts int
	Backoff  time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	Audit    *audit.Log
}

// Queue is the durable queue of logout tokens.
type Queue struct {
	cfg   QueueConfig
	wake  chan struct{}
	Stats Stats
}

// NewQueue returns a queue; Service.Run works it.
func NewQueue(cfg QueueConfig) *Queue {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.UntrustedHTTPClient == nil {
		cfg.UntrustedHTTPClient = netguard.Client(5 * time.Second)
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 8
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Queue{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Enqueue queues n. Queueing the same notice again while it waits is a
// no-op, so a logout job that is run twice sends each token once.
func (q *Queue) Enqueue(ctx context.Context, n Notice) error {
	now := q.cfg.Now()
	sum := sha256.Sum256([]byte(n.URI + "\x00" + n.Audience + "\x00" + n.Subject + "\x00" + n.SID))
	d := delivery{Notice: n, ID: base64.RawURLEncoding.EncodeToString(sum[:18]), NextAt: now, Created: now}
	b, _ := json.Marshal(d)
	err := q.cfg.Store.Apply(ctx, store.Create(keyDelivery+d.ID, b, deliveryTTL), store.SetAdd(setQueue, d.ID))
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Token mints a logout token (Back-Channel Logout §2.4): typ logout+jwt,
// an events member, a jti, never a nonce.
func (q *Queue) Token(aud, sub, sid string) (string, error) {
	now := q.cfg.Now()
	claims := map[string]any{
		"iss": q.cfg.Issuer, "aud": aud, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomID(), "sub": sub, "events": map[string]any{BackchannelEvent: map[string]any{}},
	}
	if sid != "" {
		claims["sid"] = sid
	}
	return q.cfg.Signer.SignClaims(TokenType, claims)
}

// Len is how many deliveries wait (or are being retried).
func (q *Queue) Len(ctx context.Context) (int, error) {
	ids, err := q.cfg.Store.SetMembers(ctx, setQueue)
	return len(ids), err
}

// deliverDue tries every delivery whose time has come.
func (q *Queue) deliverDue(ctx context.Context) {
	ids, err := q.cfg.Store.SetMembers(ctx, setQueue)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			q.cfg.Logger.Error("gatehouse logout: reading the delivery queue", "error", err)
		}
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if d, ok := q.claim(ctx, id); ok {
			q.deliver(ctx, d)
		}
	}
}

// claim takes a due delivery for this worker (a lease, so another
// instance does not send it at the same time).
func (q *Queue) claim(ctx context.Context, id string) (delivery, bool) {
	now := q.cfg.Now()
	var d delivery
	claimed := false
	err := q.cfg.Store.Update(ctx, keyDelivery+id, deliveryTTL, func(old []byte) ([]byte, error) {
		claimed = false
		if old == nil {
			return nil, store.ErrNotFound
		}
		if err := json.Unmarshal(old, &d); err != nil {
			return nil, err
		}
		if now.Before(d.NextAt) {
			return old, nil
		}
		claimed = true
		d.NextAt = now.Add(lease)
		return json.Marshal(d)
	})
	if errors.Is(err, store.ErrNotFound) {
		_ = q.cfg.Store.SetRemove(ctx, setQueue, id)
		return d, false
	}
	return d, err == nil && claimed
}

func (q *Queue) deliver(ctx context.Context, d delivery) {
	tok, err := q.Token(d.Audience, d.Subject, d.SID)
	if err == nil {
		err = q.post(ctx, d.URI, tok, d.Untrusted)
	}
	if err == nil {
		q.Stats.Delivered.Add(1)
		q.finish(ctx, d.ID)
		return
	}
	q.Stats.Failed.Add(1)
	d.Attempts++
	if d.Attempts >= q.cfg.Attempts {
		q.Stats.GivenUp.Add(1)
		q.cfg.Logger.Error("gatehouse logout: back-channel logout given up", "uri", d.URI, "aud", d.Audience,
			"attempts", d.Attempts, "error", err)
		q.cfg.Audit.Record(ctx, audit.Event{Event: audit.LogoutGivenUp, Target: d.URI, Client: d.Audience, Subject: d.Subject,
			SID: d.SID, Reason: err.Error()})
		q.finish(ctx, d.ID)
		return
	}
	backoff := min(q.cfg.Backoff<<(d.Attempts-1), time.Hour)
	d.NextAt = q.cfg.Now().Add(backoff)
	q.cfg.Logger.Warn("gatehouse logout: back-channel logout failed; will retry", "uri", d.URI, "attempt", d.Attempts,
		"retry_in", backoff, "error", err)
	b, _ := json.Marshal(d)
	_ = q.cfg.Store.Set(ctx, keyDelivery+d.ID, b, deliveryTTL)
}

func (q *Queue) finish(ctx context.Context, id string) {
	_ = q.cfg.Store.Apply(ctx, store.Delete(keyDelivery+id), store.SetRemove(setQueue, id))
}

func (q *Queue) post(ctx context.Context, uri, token string, untrusted bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := q.cfg.HTTPClient
	if untrusted {
		client = q.cfg.UntrustedHTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New("receiver answered " + resp.Status)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
