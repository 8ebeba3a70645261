package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A session's stored record is kept short, because a store holds one per
// signed-in browser (a million in a large Redis): times are decimal Unix
// seconds (`1795000000`, or `1795000000.25` when the time has a fraction)
// rather than RFC 3339 text, and a pass's kind is left out when it is its
// module's name. Records in the longer form that versions before wrote
// (RFC 3339 times, "id" inside) are read as well.

// stamp is a time in its stored form: exact to the nanosecond.
type stamp time.Time

func (t stamp) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("0"), nil
	}
	b := strconv.AppendInt(nil, tt.Unix(), 10)
	if ns := tt.Nanosecond(); ns != 0 {
		frac := strconv.Itoa(1_000_000_000 + ns)[1:] // nine digits
		b = append(append(b, '.'), strings.TrimRight(frac, "0")...)
	}
	return b, nil
}

func (t *stamp) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' { // an earlier version's RFC 3339 text
		return (*time.Time)(t).UnmarshalJSON(b)
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	secs, frac, _ := bytes.Cut(b, []byte("."))
	s, err := strconv.ParseInt(string(secs), 10, 64)
	if err != nil || len(frac) > 9 {
		return fmt.Errorf("session: bad time %q", b)
	}
	var ns int64
	if len(frac) > 0 {
		if ns, err = strconv.ParseInt(string(frac)+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil || ns < 0 {
			return fmt.Errorf("session: bad time %q", b)
		}
	}
	if s == 0 && ns == 0 {
		*t = stamp{}
		return nil
	}
	*t = stamp(time.Unix(s, ns).UTC())
	return nil
}

type passedWire struct {
	Module string   `json:"module"`
	Kind   *string  `json:"kind,omitempty"` // nil: the module's name
	Levels []string `json:"levels"`
	AMR    []string `json:"amr,omitempty"`
	At     stamp    `json:"at"`
	Ref    string   `json:"ref,omitempty"`
}

func (p Passed) MarshalJSON() ([]byte, error) {
	w := passedWire{Module: p.Module, Levels: p.Levels, AMR: p.AMR, At: stamp(p.At), Ref: p.Ref}
	if p.Kind != p.Module {
		w.Kind = &p.Kind
	}
	return json.Marshal(w)
}

func (p *Passed) UnmarshalJSON(b []byte) error {
	var w passedWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = Passed{Module: w.Module, Kind: w.Module, Levels: w.Levels, AMR: w.AMR, At: time.Time(w.At), Ref: w.Ref}
	if w.Kind != nil {
		p.Kind = *w.Kind
	}
	return nil
}

type sessionWire struct {
	Subject  string   `json:"sub"`
	Passed   []Passed `json:"passed"`
	Created  stamp    `json:"created"`
	LastSeen stamp    `json:"last_seen"`
	Expires  stamp    `json:"expires"`
	Clients  []string `json:"clients,omitempty"`
	Device   string   `json:"device,omitempty"`
	IP       string   `json:"ip,omitempty"`
}

func (s Session) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionWire{Subject: s.Subject, Passed: s.Passed, Created: stamp(s.Created),
		LastSeen: stamp(s.LastSeen), Expires: stamp(s.Expires), Clients: s.Clients, Device: s.Device, IP: s.IP})
}

func (s *Session) UnmarshalJSON(b []byte) error {
	var w sessionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Session{Subject: w.Subject, Passed: w.Passed, Created: time.Time(w.Created), LastSeen: time.Time(w.LastSeen),
		Expires: time.Time(w.Expires), Clients: w.Clients, Device: w.Device, IP: w.IP}
	return nil
}
