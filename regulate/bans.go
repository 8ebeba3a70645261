package regulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Bans lists the keys banned now, soonest end first.
func (l *Limiter) Bans(ctx context.Context) ([]Ban, error) {
	members, err := l.st.SetMembers(ctx, setBans)
	if err != nil {
		return nil, fmt.Errorf("listing bans: %w", err)
	}
	now := l.now()
	out := []Ban{}
	for _, m := range members {
		k, err := ParseKey(m)
		if err != nil {
			_ = l.st.SetRemove(ctx, setBans, m)
			continue
		}
		b, err := l.st.Get(ctx, keyPrefix+k.String())
		var r record
		if errors.Is(err, store.ErrNotFound) || err == nil && (json.Unmarshal(b, &r) != nil || !now.Before(r.BannedUntil)) {
			_ = l.st.SetRemove(ctx, setBans, m) // over: drop from the index
			continue
		} else if err != nil {
			return nil, fmt.Errorf("listing bans: %w", err)
		}
		out = append(out, Ban{Key: k, Until: r.BannedUntil, Bans: r.Bans, Manual: r.Manual})
	}
	slices.SortFunc(out, func(a, b Ban) int { return a.Until.Compare(b.Until) })
	return out, nil
}

// BanKey bans k for d (an admin's decision: not doubled, lifted only by
// Lift or its end).
func (l *Limiter) BanKey(ctx context.Context, k Key, d time.Duration) (Ban, error) {
	if _, ok := l.policy[k.Kind]; !ok {
		return Ban{}, fmt.Errorf("keys of kind %q are not regulated", k.Kind)
	}
	if d <= 0 {
		return Ban{}, errors.New("a ban needs a positive duration")
	}
	var ban Ban
	err := l.update(ctx, k, func(r *record, now time.Time) error {
		r.BannedUntil, r.Manual, r.LastBan = now.Add(d), true, now
		ban = Ban{Key: k, Until: r.BannedUntil, Bans: r.Bans, Manual: true}
		return nil
	})
	if err != nil {
		return ban, fmt.Errorf("banning %s: %w", k, err)
	}
	return ban, l.st.SetAdd(ctx, setBans, k.String())
}

// Lift ends k's ban and forgets its failures and ban count; it reports
// whether there was a ban.
func (l *Limiter) Lift(ctx context.Context, k Key) (bool, error) {
	var was bool
	err := l.st.Update(ctx, keyPrefix+k.String(), time.Minute, func(old []byte) ([]byte, error) {
		var r record
		if old != nil && json.Unmarshal(old, &r) == nil {
			was = l.now().Before(r.BannedUntil)
		}
		return nil, nil // deletes the record
	})
	if err != nil {
		return false, fmt.Errorf("lifting %s: %w", k, err)
	}
	return was, l.st.SetRemove(ctx, setBans, k.String())
}

// Describe is a human reading of a ban's remaining time.
func Describe(d time.Duration) string {
	switch {
	case d <= time.Second:
		return "a second"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int((d+time.Second-1)/time.Second))
	case d < 90*time.Second:
		return "a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Round(time.Minute)/time.Minute))
	case d < 90*time.Minute:
		return "an hour"
	default:
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	}
}
