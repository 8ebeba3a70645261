package console

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
)

// DefaultRecent is how many audit events an instance keeps for the
// audit page.
const DefaultRecent = 1000

// Entry is an audit event and when it was recorded.
type Entry struct {
	At time.Time
	audit.Event
}

// Recent keeps the last audit events of this instance in memory (a
// ring): subscribe Observe to the audit log.
type Recent struct {
	mu   sync.Mutex
	buf  []Entry
	next int
	full bool
	now  func() time.Time
}

// NewRecent keeps the last n events (DefaultRecent when n <= 0).
func NewRecent(n int, now func() time.Time) *Recent {
	if n <= 0 {
		n = DefaultRecent
	}
	if now == nil {
		now = time.Now
	}
	return &Recent{buf: make([]Entry, n), now: now}
}

// Observe keeps e; it is the audit log's subscriber.
func (r *Recent) Observe(_ context.Context, e audit.Event) {
	e.AMR = append([]string(nil), e.AMR...)
	e.Modules = append([]string(nil), e.Modules...)
	r.mu.Lock()
	r.buf[r.next] = Entry{At: r.now(), Event: e}
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// Filter selects events: each set field must match (text fields are
// case-insensitive substrings; Since and Until bound the time).
type Filter struct {
	Event, User, Client, IP string
	Since, Until            time.Time
}

// matches tells whether e passes f. User matches the username, the
// subject, a login name typed and the admin.
func (f Filter) matches(e Entry) bool {
	has := func(q string, fields ...string) bool {
		if q == "" {
			return true
		}
		q = strings.ToLower(q)
		for _, v := range fields {
			if strings.Contains(strings.ToLower(v), q) {
				return true
			}
		}
		return false
	}
	return has(f.Event, e.Event.Event) && has(f.User, e.User, e.Subject, e.Attempted, e.Admin) &&
		has(f.Client, e.Client) && has(f.IP, e.IP) &&
		(f.Since.IsZero() || !e.At.Before(f.Since)) && (f.Until.IsZero() || !e.At.After(f.Until))
}

// Search returns up to limit events matching f, newest first, and
// whether more matched.
func (r *Recent) Search(f Filter, limit int) ([]Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	var out []Entry
	for i := range n {
		e := r.buf[(r.next-1-i+len(r.buf))%len(r.buf)]
		if !f.matches(e) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, e)
	}
	return out, false
}
