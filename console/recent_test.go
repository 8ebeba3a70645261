package console

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
)

func TestRecentKeepsTheLastN(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRecent(3, func() time.Time { return now })
	for i := range 5 {
		now = now.Add(time.Minute)
		r.Observe(context.Background(), audit.Event{Event: "e", User: fmt.Sprint("u", i), IP: "192.0.2.1"})
	}
	got, more := r.Search(Filter{}, 10)
	if more || len(got) != 3 || got[0].User != "u4" || got[2].User != "u2" {
		t.Fatalf("kept %v (more %v), want u4 u3 u2", got, more)
	}
	if got, more := r.Search(Filter{}, 2); !more || len(got) != 2 {
		t.Fatalf("limit 2: %d, more %v", len(got), more)
	}
	if got, _ := r.Search(Filter{User: "U3"}, 10); len(got) != 1 || got[0].User != "u3" {
		t.Fatalf("by user: %v", got)
	}
	since := time.Date(2026, 1, 1, 0, 4, 0, 0, time.UTC)
	if got, _ := r.Search(Filter{Since: since}, 10); len(got) != 2 {
		t.Fatalf("since 00:04: %v", got)
	}
	if got, _ := r.Search(Filter{Until: since}, 10); len(got) != 2 {
		t.Fatalf("until 00:04: %v", got)
	}
	if got, _ := r.Search(Filter{IP: "198.51.100.1"}, 10); len(got) != 0 {
		t.Fatalf("by another address: %v", got)
	}
}

// FuzzAuditSearch: any typed time and filter is read without a panic,
// and a search returns at most its limit.
func FuzzAuditSearch(f *testing.F) {
	f.Add("2026-01-31 14:00", "login", "alice", "192.0.2.1")
	f.Add("2026-01-31T14:00:00+02:00", "", "", "")
	f.Add("\x00", "%", "\xff", "::1")
	r := NewRecent(8, nil)
	for i := range 10 {
		r.Observe(context.Background(), audit.Event{Event: "login_failed", User: fmt.Sprint("alice", i), IP: "192.0.2.1"})
	}
	f.Fuzz(func(t *testing.T, when, event, user, ip string) {
		ft := Filter{Event: event, User: user, IP: ip}
		if tm, err := parseWhen(when); err == nil {
			ft.Since = tm
		}
		if got, _ := r.Search(ft, 3); len(got) > 3 {
			t.Fatalf("%d results over the limit", len(got))
		}
	})
}
