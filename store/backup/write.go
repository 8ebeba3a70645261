package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Writer writes an export: NewWriter writes the header, Add each record,
// Close the trailer. Without Close the file is incomplete, and the
// reader refuses it.
type Writer struct {
	bw  *bufio.Writer
	h   hash.Hash
	enc *json.Encoder
	sum Summary
	now func() time.Time
}

// NewWriter writes h's header line to w. h.Format and h.Version are
// filled in; now (nil: time.Now) turns remaining TTLs into expiries.
func NewWriter(w io.Writer, h Header, now func() time.Time) (*Writer, error) {
	if now == nil {
		now = time.Now
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	sum := sha256.New()
	ew := &Writer{bw: bw, h: sum, enc: json.NewEncoder(io.MultiWriter(bw, sum)), now: now}
	h.Format, h.Version = Format, Version
	if h.Created.IsZero() {
		h.Created = now().UTC()
	}
	if err := ew.enc.Encode(h); err != nil {
		return nil, fmt.Errorf("writing the export header: %w", err)
	}
	return ew, nil
}

// Add writes one record Scan reported.
func (w *Writer) Add(r store.Record) error {
	k := text(r.Key)
	l := line{}
	if r.IsSet() {
		l.Set = &k
		for _, m := range r.Members {
			l.Members = append(l.Members, text(m))
		}
		w.sum.Sets++
		w.sum.Members += len(r.Members)
	} else {
		v := r.Value
		if v == nil {
			v = []byte{}
		}
		l.Key, l.Value = &k, &v
		if r.TTL > 0 {
			exp := w.now().Add(r.TTL).UTC().Truncate(time.Millisecond)
			l.Expires = &exp
		}
		w.sum.Values++
	}
	if err := w.enc.Encode(l); err != nil {
		return fmt.Errorf("writing %q to the export: %w", r.Key, err)
	}
	return nil
}

// Close writes the trailer and flushes. The summary counts what was
// written.
func (w *Writer) Close() (Summary, error) {
	t := trailer{Summary: w.sum, SHA256: hex.EncodeToString(w.h.Sum(nil))}
	if err := json.NewEncoder(w.bw).Encode(line{End: &t}); err != nil {
		return w.sum, err
	}
	return w.sum, w.bw.Flush()
}

// Export writes every live record of st to w (see the package doc for
// the format). A record longer than the reader accepts fails the export
// rather than making a file that cannot be imported.
func Export(ctx context.Context, st store.Store, w io.Writer, issuer string) (Summary, error) {
	ew, err := NewWriter(w, Header{Issuer: issuer}, nil)
	if err != nil {
		return Summary{}, err
	}
	err = st.Scan(ctx, "", func(r store.Record) error {
		if len(r.Value)/3*4 > MaxLine-1024 {
			return fmt.Errorf("record %q is too large to export (%d bytes)", r.Key, len(r.Value))
		}
		return ew.Add(r)
	})
	if err != nil {
		return ew.sum, fmt.Errorf("exporting the store: %w", err)
	}
	return ew.Close()
}

// errFile marks an error in the file being read (as opposed to the
// store or the source failing).
var errFile = errors.New("not a usable gatehouse export")
