package admin

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/provider"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// SessionInfo is an SSO session as admins see it.
type SessionInfo struct {
	SID      string    `json:"sid"`
	Username string    `json:"username"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Expires  time.Time `json:"expires"`
	Clients  []string  `json:"clients"`
	Modules  []string  `json:"modules"`
	Device   string    `json:"device,omitempty"`
	IP       string    `json:"ip,omitempty"`
}

// ListSessions lists the live sessions of username, or of every user when
// it is "".
func (s *Service) ListSessions(ctx context.Context, username string) ([]SessionInfo, error) {
	var who []users.User
	if username != "" {
		u, err := s.FindUser(ctx, username)
		if err != nil {
			return nil, err
		}
		who = append(who, u)
	} else {
		all, err := s.Users.List(ctx)
		if err != nil {
			return nil, err
		}
		who = all
	}
	out := []SessionInfo{}
	for _, u := range who {
		list, err := s.Sessions.ListFor(ctx, u.Subject)
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			var mods []string
			for _, p := range x.Passed {
				mods = append(mods, p.Module)
			}
			out = append(out, SessionInfo{SID: x.ID, Username: u.Username, Created: x.Created, LastSeen: x.LastSeen,
				Expires: x.Expires, Clients: x.Clients, Modules: mods, Device: x.Device, IP: x.IP})
		}
	}
	return out, nil
}

// EndSession ends one live session (tokens revoked, clients and gates
// told) and returns its subject.
func (s *Service) EndSession(ctx context.Context, sid string) (string, error) {
	x, err := s.Sessions.Get(ctx, sid)
	if errors.Is(err, session.ErrNoSession) {
		return "", refuse(NotFound, "no live session with that sid")
	} else if err != nil {
		return "", err
	}
	return x.Subject, s.Logout.End(ctx, x.ID, logout.ByAdmin)
}

// EndSessions ends every session of u and returns how many.
func (s *Service) EndSessions(ctx context.Context, u users.User) (int, error) {
	return s.Logout.EndAll(ctx, u.Subject, logout.ByAdmin)
}

// ListClients lists every client, of the configuration and run-time ones.
func (s *Service) ListClients(ctx context.Context) ([]provider.Client, error) {
	return s.Clients.List(ctx)
}

// IsStatic tells whether a client comes from the configuration.
func (s *Service) IsStatic(id string) bool { return s.Clients.IsStatic(id) }

// AddClient registers c and returns it with its secret (generated for a
// confidential client, shown only this once).
func (s *Service) AddClient(ctx context.Context, c provider.Client) (*provider.Client, string, error) {
	var secret string
	if !c.Public {
		secret = provider.NewClientSecret()
	}
	c.SecretHash = nil
	if err := s.Clients.Add(ctx, c, secret); err != nil {
		return nil, "", refuse(Invalid, "%v", err)
	}
	got, err := s.Clients.Get(ctx, c.ID)
	return got, secret, err
}

// DeleteClient removes a client registered at run time (with the CLI,
// the console or dynamic registration); a client of the configuration
// is removed there.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	if _, err := s.Clients.Get(ctx, id); errors.Is(err, provider.ErrUnknownClient) {
		return refuse(NotFound, "no client %s", id)
	} else if err != nil {
		return err
	}
	if s.Clients.IsStatic(id) {
		return refuse(Invalid, "client %s is configured in the Caddyfile: remove it there and reload", id)
	}
	return s.Clients.Delete(ctx, id)
}

// RotateKeys makes a new signing key active and returns its kid.
func (s *Service) RotateKeys(ctx context.Context) (string, error) {
	return s.Keys.Rotate(ctx)
}
