package admin

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

// BanTarget names what to ban: exactly one of Key ("user:<sub>",
// "ip:<addr>", "client:<id>"), User (a username), IP or Client.
type BanTarget struct {
	Key, User, IP, Client string
}

// BanKey resolves t to a regulation key.
func (s *Service) BanKey(ctx context.Context, t BanTarget) (regulate.Key, error) {
	n := 0
	for _, v := range []string{t.Key, t.User, t.IP, t.Client} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return regulate.Key{}, refuse(Invalid, "name one of key, user, ip or client")
	}
	switch {
	case t.User != "":
		u, err := s.FindUser(ctx, t.User)
		if err != nil {
			return regulate.Key{}, err
		}
		return regulate.User(u.Subject), nil
	case t.IP != "":
		return regulate.IP(t.IP), nil
	case t.Client != "":
		return regulate.Client(t.Client), nil
	}
	k, err := regulate.ParseKey(t.Key)
	if err != nil {
		return k, refuse(Invalid, "%v", err)
	}
	return k, nil
}

// BanInfo is a ban as admins see it.
type BanInfo struct {
	Key    string    `json:"key"`
	User   string    `json:"user,omitempty"`
	Until  time.Time `json:"until"`
	Bans   int       `json:"bans"`
	Manual bool      `json:"manual,omitempty"`
}

func (s *Service) banInfo(ctx context.Context, b regulate.Ban) BanInfo {
	bi := BanInfo{Key: b.Key.String(), Until: b.Until, Bans: b.Bans, Manual: b.Manual}
	if b.Key.Kind == regulate.KindUser && !strings.HasPrefix(b.Key.Value, "name-") {
		if u, err := s.Users.Get(ctx, b.Key.Value); err == nil {
			bi.User = u.Username
		}
	}
	return bi
}

// Bans lists the bans in force.
func (s *Service) Bans(ctx context.Context) ([]BanInfo, error) {
	bans, err := s.Regulate.Bans(ctx)
	if err != nil {
		return nil, err
	}
	out := []BanInfo{}
	for _, b := range bans {
		out = append(out, s.banInfo(ctx, b))
	}
	return out, nil
}

// DefaultBan is how long a ban lasts when no duration is given.
const DefaultBan = time.Hour

// Ban bans k for d (DefaultBan when 0).
func (s *Service) Ban(ctx context.Context, actor string, k regulate.Key, d time.Duration) (BanInfo, error) {
	if d == 0 {
		d = DefaultBan
	}
	ban, err := s.Regulate.BanKey(ctx, k, d)
	if err != nil {
		return BanInfo{}, refuse(Invalid, "%v", err)
	}
	s.Audit.Record(ctx, audit.Event{Event: audit.Banned, Key: k.String(), Until: ban.Until, Reason: "admin", Admin: actor})
	return s.banInfo(ctx, ban), nil
}

// Lift ends the ban of k and tells whether there was one.
func (s *Service) Lift(ctx context.Context, actor string, k regulate.Key) (bool, error) {
	was, err := s.Regulate.Lift(ctx, k)
	if err != nil {
		return false, err
	}
	s.Audit.Record(ctx, audit.Event{Event: audit.BanLifted, Key: k.String(), Admin: actor})
	return was, nil
}
