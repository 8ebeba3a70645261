package backup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Embedded-store limits (bbolt's largest key) checked while reading, so
// that a file the backend would refuse half-way is refused before any
// write.
const maxKey = 32768

// FileError is a problem with the file itself: not an export, another
// format, truncated, altered. Line is 0 when no line is to blame.
type FileError struct {
	Line int
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line == 0 {
		return "export file: " + e.Msg
	}
	return fmt.Sprintf("export file, line %d: %s", e.Line, e.Msg)
}

func (e *FileError) Unwrap() error { return errFile }

// IsFileError reports whether err is a problem of the file (see
// FileError) rather than of the store or of reading.
func IsFileError(err error) bool { return errors.Is(err, errFile) }

// Read reads an export from r (plain or gzip), calling check with the
// header before anything else and fn with every entry. It verifies the
// whole file: the header, every line, the trailer's counts and SHA-256,
// and that nothing follows the trailer. fn runs as lines are read, so a
// caller that must not act on a bad file reads it twice: once to
// verify, once to act. An error from check or fn stops Read and is
// returned as it is.
func Read(r io.Reader, check func(Header) error, fn func(Entry) error) (Header, Summary, error) {
	var h Header
	var sum Summary
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return h, sum, &FileError{Msg: "bad gzip header: " + err.Error()}
		}
		defer zr.Close()
		src = zr
	}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	digest := sha256.New()
	n := 0
	seen := map[string]struct{}{} // "k"+key and "s"+set name
	next := func() ([]byte, error) {
		if !sc.Scan() {
			switch err := sc.Err(); {
			case errors.Is(err, bufio.ErrTooLong):
				return nil, &FileError{Line: n + 1, Msg: fmt.Sprintf("longer than %d bytes", MaxLine)}
			case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.Is(err, io.ErrUnexpectedEOF):
				return nil, &FileError{Line: n + 1, Msg: "the file is cut short or damaged (" + err.Error() + ")"}
			case err != nil:
				return nil, fmt.Errorf("reading the export: %w", err)
			}
			return nil, io.EOF
		}
		n++
		return sc.Bytes(), nil
	}
	b, err := next()
	if err == io.EOF {
		return h, sum, &FileError{Msg: "the file is empty"}
	} else if err != nil {
		return h, sum, err
	}
	digest.Write(b)
	digest.Write([]byte{'\n'})
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || h.Format != Format {
		return h, sum, &FileError{Line: 1, Msg: "not a gatehouse store export (no header line)"}
	}
	if err := check(h); err != nil {
		return h, sum, err
	}
	for {
		b, err := next()
		if err == io.EOF {
			return h, sum, &FileError{Msg: fmt.Sprintf("the file ends after line %d without its end line: it is truncated", n)}
		} else if err != nil {
			return h, sum, err
		}
		l, err := parseLine(b)
		if err != nil {
			at := n
			if _, more := next(); more != nil {
				// The bad line is the last: the file was cut in it.
				return h, sum, &FileError{Line: at, Msg: "the file is cut short or damaged in its last line (" + err.Error() + ")"}
			}
			return h, sum, &FileError{Line: at, Msg: err.Error()}
		}
		if l.End != nil {
			if err := checkEnd(l.End, sum, digest.Sum(nil)); err != nil {
				return h, sum, &FileError{Line: n, Msg: err.Error()}
			}
			if _, err := next(); err != io.EOF {
				if err == nil {
					err = &FileError{Line: n + 1, Msg: "more lines after the end line"}
				}
				return h, sum, err
			}
			return h, sum, nil
		}
		digest.Write(b)
		digest.Write([]byte{'\n'})
		e := toEntry(l)
		id := "k" + e.Key
		if e.IsSet() {
			id = "s" + e.Key
		}
		if _, dup := seen[id]; dup {
			return h, sum, &FileError{Line: n, Msg: fmt.Sprintf("%q appears a second time", e.Key)}
		}
		seen[id] = struct{}{}
		if e.IsSet() {
			sum.Sets++
			sum.Members += len(e.Members)
		} else {
			sum.Values++
		}
		if err := fn(e); err != nil {
			return h, sum, err
		}
	}
}

// parseLine decodes and checks one line after the header.
func parseLine(b []byte) (line, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return l, fmt.Errorf("not a record: %v", err)
	}
	if dec.More() {
		return l, errors.New("more than one JSON value on the line")
	}
	kinds := 0
	for _, set := range []bool{l.Key != nil, l.Set != nil, l.End != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return l, errors.New(`want exactly one of "key", "set" and "end"`)
	case l.Key != nil:
		if *l.Key == "" || len(*l.Key) > maxKey {
			return l, fmt.Errorf("a key must have 1 to %d bytes", maxKey)
		}
		if l.Value == nil || l.Members != nil {
			return l, errors.New(`a key needs a "value" and no "members"`)
		}
	case l.Set != nil:
		if *l.Set == "" || strings.IndexByte(string(*l.Set), 0) >= 0 {
			return l, errors.New("a set name must not be empty nor hold a NUL byte")
		}
		if len(l.Members) == 0 || l.Value != nil || l.Expires != nil {
			return l, errors.New(`a set needs "members" and no "value" or "expires"`)
		}
		for _, m := range l.Members {
			if len(*l.Set)+1+len(m) > maxKey {
				return l, fmt.Errorf("set member too long (%d bytes)", len(m))
			}
		}
	case l.Value != nil || l.Expires != nil || l.Members != nil:
		return l, errors.New("the end line holds nothing but the counts")
	}
	return l, nil
}

func checkEnd(t *trailer, got Summary, digest []byte) error {
	if t.Summary != got {
		return fmt.Errorf("the end line counts %+v but the file holds %+v", t.Summary, got)
	}
	want, err := hex.DecodeString(t.SHA256)
	if err != nil || subtle.ConstantTimeCompare(want, digest) != 1 {
		return errors.New("checksum mismatch: the file was altered or damaged")
	}
	return nil
}

func toEntry(l line) Entry {
	if l.Set != nil {
		e := Entry{Key: string(*l.Set), Members: make([]string, len(l.Members))}
		for i, m := range l.Members {
			e.Members[i] = string(m)
		}
		return e
	}
	e := Entry{Key: string(*l.Key), Value: *l.Value}
	if e.Value == nil {
		e.Value = []byte{}
	}
	if l.Expires != nil {
		e.Expires = *l.Expires
	}
	return e
}
