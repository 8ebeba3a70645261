package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Ending a session is the logout package's business; this file gives it
// what it needs: the little a session leaves behind (Meta), removal of a
// session with its indexes, and the sessions that expired, found through
// a time-ordered index rather than by scanning every live session.
//
// The index is one set per minute of expiry ("sso-exp:<unix minute>").
// Every Save adds the session to the set of its current expiry; a use
// that pushes the expiry later leaves a stale entry behind, which Expired
// recognises (the meta record says the expiry moved) and skips.

const (
	setBySubject = "sso-sub:"
	// keyMeta is the separate meta record of versions before; a session
	// record now outlives the session by metaGrace instead.
	keyMeta      = "sso-meta:"
	bucketPrefix = "sso-exp:"
	keyCursor    = "sso-exp-cursor"
	// setLegacyLive is the index of live sessions that versions before the
	// time-ordered index kept; Expired moves what it finds there once.
	setLegacyLive = "sso-live"
	// metaGrace keeps a session's record a while past its end, so a
	// sweep that was down can still announce it.
	metaGrace = 24 * time.Hour
	// maxCatchUp bounds the minutes one Expired call walks.
	maxCatchUp = 7 * 24 * 60
)

// Meta is what is left of a session to log it out, also after it expired.
type Meta struct {
	Subject string    `json:"sub"`
	Clients []string  `json:"clients,omitempty"`
	Expiry  time.Time `json:"exp,omitzero"`
}

func bucketName(t time.Time) string {
	// The minute after the expiry: the session is certainly over when its
	// bucket comes due.
	return bucketPrefix + strconv.FormatInt(t.Unix()/60+1, 10)
}

// Meta returns what is left of session id to log it out, live or not
// (ErrNoSession when the session was removed, or ended longer than a
// day ago).
func (m *Manager) Meta(ctx context.Context, id string) (Meta, error) {
	b, err := m.st.Get(ctx, keySession+id)
	if errors.Is(err, store.ErrNotFound) {
		return m.legacyMeta(ctx, id)
	} else if err != nil {
		return Meta{}, fmt.Errorf("loading session: %w", err)
	}
	s, err := decode(id, b)
	if err != nil {
		return Meta{}, err
	}
	return Meta{Subject: s.Subject, Clients: s.Clients, Expiry: m.expiry(s)}, nil
}

// legacyMeta reads the separate meta record that versions before kept
// next to a session (a session they saved may be gone already while
// its meta record waits for the sweep).
func (m *Manager) legacyMeta(ctx context.Context, id string) (Meta, error) {
	var md Meta
	b, err := m.st.Get(ctx, keyMeta+id)
	if errors.Is(err, store.ErrNotFound) {
		return md, ErrNoSession
	} else if err != nil {
		return md, fmt.Errorf("loading session: %w", err)
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return md, fmt.Errorf("decoding session meta: %w", err)
	}
	return md, nil
}

// Remove deletes session id with its indexes in one atomic write: its
// cookie stops working everywhere at once. Removing a session that is
// gone already is not an error.
func (m *Manager) Remove(ctx context.Context, id, subject string) error {
	ops := []store.Op{store.Delete(keySession + id), store.Delete(keyMeta + id)}
	if subject != "" {
		ops = append(ops, store.SetRemove(setBySubject+subject, id))
	}
	if err := m.st.Apply(ctx, ops...); err != nil {
		return fmt.Errorf("removing session: %w", err)
	}
	return nil
}

// Expired returns the ids of sessions whose expiry (idle or absolute)
// has passed, from the index minutes not yet walked. Call Done with the
// cursor it returns once they are ended.
func (m *Manager) Expired(ctx context.Context) (ids []string, cursor int64, err error) {
	now := m.opt.Now()
	last := now.Unix() / 60
	b, err := m.st.Get(ctx, keyCursor)
	var from int64
	switch {
	case errors.Is(err, store.ErrNotFound):
		// First walk: nothing older was indexed, but sessions of the
		// previous version may wait in its live set.
		from = last
		if err := m.migrateLegacy(ctx); err != nil {
			return nil, 0, err
		}
	case err != nil:
		return nil, 0, err
	default:
		from, _ = strconv.ParseInt(string(b), 10, 64)
		from++
	}
	from = max(from, last-maxCatchUp)
	seen := map[string]bool{}
	for minute := from; minute <= last; minute++ {
		set := bucketPrefix + strconv.FormatInt(minute, 10)
		members, err := m.st.SetMembers(ctx, set)
		if err != nil {
			return nil, 0, err
		}
		for _, id := range members {
			if seen[id] {
				continue // indexed at several expiries: it was used meanwhile
			}
			seen[id] = true
			md, err := m.Meta(ctx, id)
			if errors.Is(err, ErrNoSession) {
				continue // ended meanwhile
			} else if err != nil {
				return nil, 0, err
			}
			if md.Expiry.After(now) {
				continue // used since: it sits in a later minute too
			}
			ids = append(ids, id)
		}
	}
	return ids, last, nil
}

// Done records that the index was walked up to cursor and drops the
// walked minutes.
func (m *Manager) Done(ctx context.Context, cursor int64) error {
	b, err := m.st.Get(ctx, keyCursor)
	from := cursor - maxCatchUp
	if err == nil {
		if prev, perr := strconv.ParseInt(string(b), 10, 64); perr == nil {
			from = max(from, prev+1)
		}
	}
	for minute := from; minute <= cursor; minute++ {
		set := bucketPrefix + strconv.FormatInt(minute, 10)
		members, err := m.st.SetMembers(ctx, set)
		if err != nil || len(members) == 0 {
			continue
		}
		_ = m.st.SetRemove(ctx, set, members...)
	}
	return m.st.Set(ctx, keyCursor, []byte(strconv.FormatInt(cursor, 10)), 0)
}

// migrateLegacy indexes the sessions of the old live set by expiry.
func (m *Manager) migrateLegacy(ctx context.Context) error {
	ids, err := m.st.SetMembers(ctx, setLegacyLive)
	if err != nil || len(ids) == 0 {
		return err
	}
	now := m.opt.Now()
	for _, id := range ids {
		exp := now
		if s, err := m.Get(ctx, id); err == nil {
			exp = m.expiry(s)
		}
		if err := m.st.SetAdd(ctx, bucketName(exp), id); err != nil {
			return err
		}
	}
	return m.st.SetRemove(ctx, setLegacyLive, ids...)
}
