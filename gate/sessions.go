package gate

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// saveSession stores a gate session with its indexes (by user, by SSO
// session), unless its SSO session has ended meanwhile.
func saveSession(ctx context.Context, st store.Store, s *Session, now time.Time) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ops := []store.Op{store.Put(keySession+s.ID, b, s.Expires.Sub(now)), store.SetAdd(setBySubject+s.Subject, s.ID)}
	if s.SID != "" {
		// Not for an SSO session that has ended meanwhile.
		ops = append(ops, store.Absent(keyEnded+s.SID), store.SetAdd(setBySID+s.SID, s.ID))
	}
	return st.Apply(ctx, ops...)
}

// Save stores s as the gate that signed it in would (for tools that
// seed sessions: the capacity benchmark).
func (p Sessions) Save(ctx context.Context, s *Session) error {
	return saveSession(ctx, p.Store, s, p.now())
}

// Load reads the gate session id as a gate does on a cache miss: nil
// when it is gone or expired.
func (p Sessions) Load(ctx context.Context, id string) (*Session, error) {
	return loadSession(ctx, p.Store, id, p.now())
}
