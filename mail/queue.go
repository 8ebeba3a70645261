package mail

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
)

// The queue in the store, as logout's delivery queue: one record per
// message under keyMessage+id, and the set setQueue of ids to look at.
const (
	keyMessage = "mail:"
	setQueue   = "mail-queue"
)

// Run delivers queued messages until ctx ends: at once when Send queues
// one, and every second for retries and for messages queued by other
// instances or before a restart.
func (m *Mailer) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
		}
	}
}

// Len is how many messages wait (or are being retried).
func (m *Mailer) Len(ctx context.Context) (int, error) {
	ids, err := m.cfg.Store.SetMembers(ctx, setQueue)
	return len(ids), err
}

// deliverDue tries every message whose time has come, over one
// connection per pass.
func (m *Mailer) deliverDue(ctx context.Context) {
	ids, err := m.cfg.Store.SetMembers(ctx, setQueue)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) && ctx.Err() == nil {
			m.cfg.Logger.Error("gatehouse mail: reading the queue", "error", err)
		}
		return
	}
	m.pass.Lock()
	defer m.pass.Unlock()
	defer m.transport.endPass()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if r, ok := m.claim(ctx, id); ok {
			m.deliver(ctx, r)
		}
	}
}

// claim takes a due message for this worker: a lease, so that another
// instance does not send it at the same time, and so that a worker that
// dies while sending leaves it to another after the lease.
func (m *Mailer) claim(ctx context.Context, id string) (*record, bool) {
	now := m.cfg.Now()
	var r record
	claimed, corrupt := false, false
	err := m.cfg.Store.Update(ctx, keyMessage+id, m.cfg.TTL, func(old []byte) ([]byte, error) {
		claimed, corrupt = false, false
		if old == nil {
			return nil, store.ErrNotFound
		}
		if err := json.Unmarshal(old, &r); err != nil {
			corrupt = true
			return nil, nil // deleted: it would fail every second
		}
		if now.Before(r.NextAt) {
			return old, nil
		}
		claimed = true
		r.NextAt = now.Add(m.lease)
		return json.Marshal(r)
	})
	switch {
	case err == nil && corrupt:
		m.cfg.Logger.Error("gatehouse mail: dropped a queued message that cannot be read", "id", id)
		_ = m.cfg.Store.SetRemove(ctx, setQueue, id)
		return nil, false
	case errors.Is(err, store.ErrNotFound):
		// Delivered by another instance, or expired: drop the index entry.
		_ = m.cfg.Store.SetRemove(ctx, setQueue, id)
		return nil, false
	case err != nil:
		if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			m.cfg.Logger.Error("gatehouse mail: claiming a queued message", "id", id, "error", err)
		}
		return nil, false
	}
	return &r, claimed
}

func (m *Mailer) deliver(ctx context.Context, r *record) {
	g, err := m.compose(r)
	if err == nil {
		err = m.transport.deliver(ctx, r, g)
	}
	if err == nil {
		m.Stats.Delivered.Add(1)
		m.finish(ctx, r.ID)
		return
	}
	if ctx.Err() != nil {
		// Stopping: the attempt was cut short, not failed. The lease
		// runs out and the message is tried again after the restart.
		return
	}
	m.Stats.Failed.Add(1)
	r.Attempts++
	if r.Attempts >= m.cfg.Attempts || permanent(err) {
		m.Stats.GivenUp.Add(1)
		m.cfg.Logger.Error("gatehouse mail: delivery given up", "to", r.To, "template", r.Template,
			"attempts", r.Attempts, "error", err)
		m.cfg.Audit.Record(ctx, audit.Event{Event: audit.MailGivenUp, Target: r.To, Reason: r.Template + ": " + err.Error()})
		m.finish(ctx, r.ID)
		return
	}
	backoff := min(m.cfg.Backoff<<(r.Attempts-1), time.Hour)
	r.NextAt = m.cfg.Now().Add(backoff)
	m.cfg.Logger.Warn("gatehouse mail: delivery failed; will retry", "to", r.To, "template", r.Template,
		"attempt", r.Attempts, "retry_in", backoff, "error", err)
	b, _ := json.Marshal(r)
	// Only if the message is still there: a lost update must not bring
	// back a message another instance delivered meanwhile.
	_ = m.cfg.Store.Update(ctx, keyMessage+r.ID, m.cfg.TTL, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, store.ErrNotFound
		}
		return b, nil
	})
}

// finish deletes a delivered or given-up message: its link is in it.
func (m *Mailer) finish(ctx context.Context, id string) {
	err := m.cfg.Store.Apply(ctx, store.Delete(keyMessage+id), store.SetRemove(setQueue, id))
	if err != nil && !errors.Is(err, store.ErrClosed) {
		m.cfg.Logger.Error("gatehouse mail: removing a sent message from the queue", "id", id, "error", err)
	}
}

// permanent reports a refusal that no retry will change: the server
// refused the recipient or the message itself with a 5xx reply. Failures
// to connect, to log in or of the sender are worth retrying: they are
// the server's or the configuration's, and may be fixed meanwhile.
func permanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() || se.ErrorCode() < 500 {
		return false
	}
	return se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPDataClose
}
