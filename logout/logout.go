package logout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Reason says why a session ended; it is logged and kept in the job.
type Reason string

// Reasons a session ends.
const (
	ByClient   Reason = "client_logout"     // RP-initiated logout
	ByGate     Reason = "gate_logout"       // /.gatehouse/logout on a protected site
	ByUser     Reason = "account_page"      // the user, on the account page
	ByAdmin    Reason = "admin"             // the admin API or CLI
	Disabled   Reason = "user_disabled"     // the account was disabled
	Deleted    Reason = "user_deleted"      // the account was deleted
	Password   Reason = "password_changed"  // a new password ends the other sessions
	Replaced   Reason = "replaced"          // another person signed in in this browser
	Expired    Reason = "expired"           // idle or absolute expiry
	UserLogout Reason = "user_logout"       // sign-out at the provider, confirmed by the person
	TooMany    Reason = "too_many_sessions" // the user's oldest session beyond the cap
	Upstream   Reason = "upstream_logout"   // the remote provider the session came from logged the person out
)

// Ended is the news that a session ended. SID is empty when every
// session of Subject ended (EndAll), including ones already expired.
type Ended struct {
	SID     string    `json:"sid,omitempty"`
	Subject string    `json:"sub"`
	Clients []string  `json:"clients,omitempty"`
	Reason  Reason    `json:"reason"`
	At      time.Time `json:"at"`
}

// Party holds something of a session and must let go of it when the
// session ends: it revokes or drops what it holds and queues notices to
// its receivers. It may be called more than once for the same session (a
// job interrupted half-way is run again), so it must be idempotent.
type Party interface {
	SessionEnded(ctx context.Context, e Ended, q *Queue) error
}

// Config configures a Service.
type Config struct {
	Store    store.Store
	Sessions *session.Manager
	Queue    *Queue
	// SweepEvery is how often expired sessions are looked for, and
	// interrupted jobs finished. Default 30s.
	SweepEvery time.Duration
	// MaxSessionsPerUser caps a user's live SSO sessions; a new one ends
	// the oldest beyond it. Default 50.
	MaxSessionsPerUser int
	Audit              *audit.Log
	Now                func() time.Time
	Logger             *slog.Logger
}

// Service ends sessions.
type Service struct {
	cfg     Config
	mu      sync.RWMutex
	parties []Party
}

const (
	keyJob  = "logout-job:"
	setJobs = "logout-jobs"
	jobTTL  = 7 * 24 * time.Hour
	// jobGrace leaves a job to the request that started it before Run
	// takes it over.
	jobGrace = 10 * time.Second
)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Sessions == nil || cfg.Queue == nil {
		return nil, errors.New("logout: Store, Sessions and Queue are required")
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 30 * time.Second
	}
	if cfg.MaxSessionsPerUser <= 0 {
		cfg.MaxSessionsPerUser = 50
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg}, nil
}

// Subscribe adds a party; parties hear of every ended session in the
// order they subscribed.
func (s *Service) Subscribe(p Party) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parties = append(s.parties, p)
}

// Queue is the delivery queue (for statistics and direct notices).
func (s *Service) Queue() *Queue { return s.cfg.Queue }

// End ends session sid for reason: once End returns nil, the session's
// cookie works nowhere, its tokens are revoked, the gates have dropped
// their sessions and every notice is queued. An error means the logout
// could not be recorded (the store is unreachable): the session may
// still be live, and the caller must say so; calling End again finishes
// it. Ending a session that is already gone is not an error.
func (s *Service) End(ctx context.Context, sid string, reason Reason) error {
	if sid == "" {
		return errors.New("logout: no session id")
	}
	e, err := s.job(ctx, sid, func() (Ended, error) {
		md, err := s.cfg.Sessions.Meta(ctx, sid)
		if err != nil {
			return Ended{}, err
		}
		return Ended{SID: sid, Subject: md.Subject, Clients: md.Clients, Reason: reason, At: s.cfg.Now()}, nil
	})
	if errors.Is(err, session.ErrNoSession) {
		return nil
	} else if err != nil {
		return err
	}
	if err := s.cfg.Sessions.Remove(ctx, sid, e.Subject); err != nil {
		return err
	}
	return s.run(ctx, e)
}

// EndReplaced ends sid because another person signed in in its browser.
func (s *Service) EndReplaced(ctx context.Context, sid string) error {
	return s.End(ctx, sid, Replaced)
}

// LimitSessions ends subject's oldest sessions beyond the cap.
func (s *Service) LimitSessions(ctx context.Context, subject string) error {
	list, err := s.cfg.Sessions.ListFor(ctx, subject) // newest first
	if err != nil {
		return err
	}
	for i := s.cfg.MaxSessionsPerUser; i < len(list); i++ {
		if err := s.End(ctx, list[i].ID, TooMany); err != nil {
			return err
		}
	}
	return nil
}

// EndAll ends every session of subject, and has the parties drop what
// they still hold of sessions of subject that ended before (a gate
// session outliving an expired SSO session). It returns how many live
// SSO sessions it ended.
func (s *Service) EndAll(ctx context.Context, subject string, reason Reason) (int, error) {
	list, err := s.cfg.Sessions.ListFor(ctx, subject)
	if err != nil {
		return 0, err
	}
	for _, o := range list {
		if err := s.End(ctx, o.ID, reason); err != nil {
			return 0, err
		}
	}
	e, err := s.job(ctx, "sub:"+subject, func() (Ended, error) {
		return Ended{Subject: subject, Reason: reason, At: s.cfg.Now()}, nil
	})
	if err != nil {
		return 0, err
	}
	return len(list), s.run(ctx, e)
}

func jobID(e Ended) string {
	if e.SID == "" {
		return "sub:" + e.Subject
	}
	return e.SID
}

// job returns the recorded job id, creating it from fresh() when there
// is none. fresh's errors (ErrNoSession: nothing to end) pass through.
func (s *Service) job(ctx context.Context, id string, fresh func() (Ended, error)) (Ended, error) {
	for range 3 {
		b, err := s.cfg.Store.Get(ctx, keyJob+id)
		if err == nil {
			var e Ended
			if err := json.Unmarshal(b, &e); err != nil {
				return e, fmt.Errorf("decoding logout job: %w", err)
			}
			return e, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return Ended{}, fmt.Errorf("recording logout: %w", err)
		}
		e, err := fresh()
		if err != nil {
			return e, err
		}
		nb, _ := json.Marshal(e)
		err = s.cfg.Store.Apply(ctx, store.Create(keyJob+id, nb, jobTTL), store.SetAdd(setJobs, id))
		if errors.Is(err, store.ErrExists) {
			continue // another request or instance recorded it first
		}
		if err != nil {
			return e, fmt.Errorf("recording logout: %w", err)
		}
		return e, nil
	}
	return Ended{}, errors.New("recording logout: the job keeps changing")
}

// run tells every party, then drops the job.
func (s *Service) run(ctx context.Context, e Ended) error {
	s.mu.RLock()
	parties := append([]Party(nil), s.parties...)
	s.mu.RUnlock()
	for _, p := range parties {
		if err := p.SessionEnded(ctx, e, s.cfg.Queue); err != nil {
			return fmt.Errorf("ending session: %w", err)
		}
	}
	id := jobID(e)
	if err := s.cfg.Store.Apply(ctx, store.Delete(keyJob+id), store.SetRemove(setJobs, id)); err != nil {
		return fmt.Errorf("ending session: %w", err)
	}
	if e.SID != "" {
		s.cfg.Audit.Record(ctx, audit.Event{Event: audit.SessionEnded, SID: e.SID, Subject: e.Subject, Reason: string(e.Reason),
			Client: strings.Join(e.Clients, " ")})
	}
	return nil
}

// Run works the delivery queue, finishes interrupted jobs and ends
// expired sessions, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSweep time.Time
	for {
		if now := s.cfg.Now(); now.Sub(lastSweep) >= s.cfg.SweepEvery {
			lastSweep = now
			s.Sweep(ctx)
		}
		s.cfg.Queue.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.cfg.Queue.wake:
		}
	}
}

// Sweep finishes jobs left half-done and ends sessions that expired.
func (s *Service) Sweep(ctx context.Context) {
	logErr := func(what string, err error) {
		if err != nil && !errors.Is(err, store.ErrClosed) && ctx.Err() == nil {
			s.cfg.Logger.Error("gatehouse logout: "+what, "error", err)
		}
	}
	ids, err := s.cfg.Store.SetMembers(ctx, setJobs)
	logErr("reading logout jobs", err)
	for _, id := range ids {
		b, err := s.cfg.Store.Get(ctx, keyJob+id)
		if errors.Is(err, store.ErrNotFound) {
			_ = s.cfg.Store.SetRemove(ctx, setJobs, id)
			continue
		} else if err != nil {
			logErr("reading logout job", err)
			continue
		}
		var e Ended
		if json.Unmarshal(b, &e) != nil || s.cfg.Now().Sub(e.At) < jobGrace {
			continue
		}
		if e.SID != "" {
			logErr("removing session", s.cfg.Sessions.Remove(ctx, e.SID, e.Subject))
		}
		logErr("finishing logout job", s.run(ctx, e))
	}
	expired, cursor, err := s.cfg.Sessions.Expired(ctx)
	if err != nil {
		logErr("finding expired sessions", err)
		return
	}
	for _, sid := range expired {
		if err := s.End(ctx, sid, Expired); err != nil {
			logErr("ending expired session", err)
			return // walk the same minutes again next time
		}
	}
	logErr("recording the expiry sweep", s.cfg.Sessions.Done(ctx, cursor))
}
