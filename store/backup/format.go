package backup

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"
)

// Format and Version name this file format in every header.
const (
	Format  = "gatehouse-store-export"
	Version = 1
)

// MaxLine is the longest line the reader accepts (and so the largest
// value an export may hold, in base64).
const MaxLine = 64 << 20

// Header is the first line of an export.
type Header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Issuer  string    `json:"issuer"`
	Created time.Time `json:"created"`
}

// Summary counts what a file holds (or what was imported).
type Summary struct {
	Values  int `json:"values"`
	Sets    int `json:"sets"`
	Members int `json:"members"`
}

// Entry is one key or set read from an export.
type Entry struct {
	Key     string
	Value   []byte    // a key's value (not nil); nil for a set
	Expires time.Time // zero: no expiry
	Members []string  // a set's members (not nil); nil for a key
}

// IsSet reports whether e is a set.
func (e Entry) IsSet() bool { return e.Members != nil }

// line is any line after the header: exactly one of Key, Set, End.
type line struct {
	Key     *text      `json:"key,omitempty"`
	Value   *[]byte    `json:"value,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	Set     *text      `json:"set,omitempty"`
	Members []text     `json:"members,omitempty"`
	End     *trailer   `json:"end,omitempty"`
}

// trailer is the last line's content.
type trailer struct {
	Summary
	SHA256 string `json:"sha256"`
}

// text is a string that may hold any bytes: in JSON a string when it is
// valid UTF-8 (encoding/json would replace invalid bytes), otherwise
// {"b64":"…"}.
type text string

type b64text struct {
	B64 string `json:"b64"`
}

func (t text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(t)) {
		return json.Marshal(string(t))
	}
	return json.Marshal(b64text{B64: base64.StdEncoding.EncodeToString([]byte(t))})
}

func (t *text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = text(s)
		return nil
	}
	var o b64text
	if err := json.Unmarshal(b, &o); err != nil || o.B64 == "" {
		return errors.New(`want a string or {"b64":"…"}`)
	}
	raw, err := base64.StdEncoding.DecodeString(o.B64)
	if err != nil {
		return errors.New("bad base64 in b64")
	}
	*t = text(raw)
	return nil
}
