package sets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
)

const (
	keyDelivery = "set:"
	setQueue    = "set-queue"
	// lease is how long a claimed delivery is left to its worker.
	lease       = time.Minute
	deliveryTTL = 24 * time.Hour
	postTimeout = 5 * time.Second
	// maxAnswer bounds what is read of a receiver's answer.
	maxAnswer = 4096
)

// delivery is one SET for one receiver, with its progress. Its claims are
// fixed when it is queued (the same jti on every attempt, so a receiver
// that got it twice knows); it is signed at each attempt with the key
// active then.
type delivery struct {
	// ID is the SET's jti: the time it was queued, then random, so
	// that sorting ids sorts by age.
	ID       string          `json:"id"`
	URL      string          `json:"url"`
	Kind     string          `json:"kind"`
	Claims   json.RawMessage `json:"claims"`
	Attempts int             `json:"attempts"`
	NextAt   time.Time       `json:"next_at"`
	Created  time.Time       `json:"created"`
}

func (s *Service) enqueue(ctx context.Context, url, kind string, claims map[string]any) error {
	now := s.cfg.Now()
	id := fmt.Sprintf("%016x", now.UnixNano()) + randomID(16)
	claims["jti"] = id
	raw, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(delivery{ID: id, URL: url, Kind: kind, Claims: raw, NextAt: now, Created: now})
	if err := s.cfg.Store.Apply(ctx, store.Create(keyDelivery+id, b, deliveryTTL), store.SetAdd(setQueue, id)); err != nil {
		return err
	}
	s.Stats.Queued.Add(1)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Len is how many SETs wait (or are being retried).
func (s *Service) Len(ctx context.Context) (int, error) {
	ids, err := s.cfg.Store.SetMembers(ctx, setQueue)
	return len(ids), err
}

// Run works the queue until ctx ends: every second, and at once when a
// SET is queued on this instance.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// deliverDue drops what is beyond the bound, then tries every SET whose
// time has come. A receiver that fails is not tried again in the same
// pass, so one that does not answer holds the others up once per pass
// at most.
func (s *Service) deliverDue(ctx context.Context) {
	ids, err := s.cfg.Store.SetMembers(ctx, setQueue)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) && ctx.Err() == nil {
			s.cfg.Logger.Error("gatehouse sets: reading the queue", "error", err)
		}
		return
	}
	slices.Sort(ids)
	if over := len(ids) - s.cfg.MaxQueued; over > 0 {
		for _, id := range ids[:over] {
			s.finish(ctx, id)
		}
		s.Stats.Dropped.Add(int64(over))
		s.cfg.Logger.Error("gatehouse sets: the queue is full; the oldest security event tokens were dropped",
			"dropped", over, "max_queued", s.cfg.MaxQueued)
		ids = ids[over:]
	}
	failing := map[string]bool{}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		d, ok := s.claim(ctx, id, failing)
		if !ok {
			continue
		}
		if !s.deliver(ctx, d) {
			failing[d.URL] = true
		}
	}
}

// claim takes a due delivery for this worker: a lease, so that another
// instance does not send it at the same time.
func (s *Service) claim(ctx context.Context, id string, failing map[string]bool) (delivery, bool) {
	now := s.cfg.Now()
	var d delivery
	claimed := false
	err := s.cfg.Store.Update(ctx, keyDelivery+id, deliveryTTL, func(old []byte) ([]byte, error) {
		claimed = false
		if old == nil {
			return nil, store.ErrNotFound
		}
		if err := json.Unmarshal(old, &d); err != nil {
			return nil, err
		}
		// A receiver this instance does not know is left to the
		// instances that do (a configuration being rolled out); its SETs
		// expire with their record otherwise.
		if _, known := s.receiver(d.URL); now.Before(d.NextAt) || failing[d.URL] || !known {
			return old, nil
		}
		claimed = true
		d.NextAt = now.Add(lease)
		return json.Marshal(d)
	})
	if errors.Is(err, store.ErrNotFound) {
		_ = s.cfg.Store.SetRemove(ctx, setQueue, id)
		return d, false
	}
	return d, err == nil && claimed
}

// refusal is a receiver's RFC 8935 §2.4 error answer: the SET will
// never be taken, so it is not sent again.
type refusal struct{ code, description string }

func (r *refusal) Error() string {
	if r.code == "" {
		return "refused (400 without an RFC 8935 error)" + r.description
	}
	return "refused: " + r.code + r.description
}

// deliver sends d once; false when the receiver did not take it.
func (s *Service) deliver(ctx context.Context, d delivery) bool {
	r, _ := s.receiver(d.URL) // claim checked it
	tok, err := s.Token(d.Claims)
	if err == nil {
		err = s.post(ctx, r, tok)
	}
	if err == nil {
		s.Stats.Delivered.Add(1)
		s.finish(ctx, d.ID)
		return true
	}
	s.Stats.Failed.Add(1)
	d.Attempts++
	var ref *refusal
	if errors.As(err, &ref) || d.Attempts >= s.cfg.Attempts {
		s.Stats.GivenUp.Add(1)
		reason := err.Error()
		if ref == nil {
			reason = fmt.Sprintf("after %d attempts: %v", d.Attempts, err)
		}
		s.cfg.Logger.Error("gatehouse sets: security event token given up", "receiver", d.URL, "event", d.Kind, "jti", d.ID,
			"attempts", d.Attempts, "error", reason)
		s.cfg.Audit.Record(ctx, audit.Event{Event: audit.SETGivenUp, Target: d.URL, Reason: d.Kind + " " + d.ID + ": " + reason})
		s.finish(ctx, d.ID)
		return ref != nil // the receiver answered: others may go on
	}
	backoff := min(s.cfg.Backoff<<(d.Attempts-1), time.Hour)
	d.NextAt = s.cfg.Now().Add(backoff)
	s.cfg.Logger.Warn("gatehouse sets: security event token not delivered; will retry", "receiver", d.URL, "event", d.Kind,
		"attempt", d.Attempts, "retry_in", backoff, "error", err)
	b, _ := json.Marshal(d)
	_ = s.cfg.Store.Set(ctx, keyDelivery+d.ID, b, deliveryTTL)
	return false
}

func (s *Service) receiver(url string) (Receiver, bool) {
	i := slices.IndexFunc(s.cfg.Receivers, func(r Receiver) bool { return r.URL == url })
	if i < 0 {
		return Receiver{}, false
	}
	return s.cfg.Receivers[i], true
}

func (s *Service) finish(ctx context.Context, id string) {
	_ = s.cfg.Store.Apply(ctx, store.Delete(keyDelivery+id), store.SetRemove(setQueue, id))
}

// post sends one SET (RFC 8935 §2): 202 Accepted is delivered; 400 is
// the receiver's refusal of this SET; anything else is tried again.
func (s *Service) post(ctx context.Context, r Receiver, token string) error {
	ctx, cancel := context.WithTimeout(ctx, postTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, strings.NewReader(token))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if r.Authorization != "" {
		req.Header.Set("Authorization", r.Authorization)
	}
	client := s.cfg.PublicHTTPClient
	if r.PrivateNetworks {
		client = s.cfg.HTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	switch resp.StatusCode {
	case http.StatusAccepted:
		return nil
	case http.StatusBadRequest:
		return readRefusal(body)
	}
	return errors.New("receiver answered " + resp.Status + " (not 202 Accepted)")
}

// readRefusal reads an RFC 8935 error answer ({"err", "description"});
// what is not one is a refusal without a code.
func readRefusal(body []byte) *refusal {
	var answer struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal(body, &answer)
	ref := &refusal{code: printable(answer.Err, 64)}
	if d := printable(answer.Description, 200); d != "" {
		ref.description = " (" + d + ")"
	}
	return ref
}

// printable keeps at most n runes of what a receiver wrote, without
// control characters (it goes to the log).
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n--
		}
	}
	return b.String()
}
