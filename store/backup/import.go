package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

// ImportOptions say what Import accepts.
type ImportOptions struct {
	// Issuer is the importing instance's issuer; a file of another issuer
	// is refused unless Force.
	Issuer string
	// Force accepts a file of another issuer or format version.
	Force bool
	// Replace overwrites keys that already exist; without it their
	// presence refuses the whole import. (Set members are always added
	// to what the set already holds.)
	Replace bool
	// BatchSize is how many store operations one atomic batch holds
	// (default 256).
	BatchSize int
	// Now is the clock expiries are measured against (default time.Now).
	Now func() time.Time
}

// Result reports an import.
type Result struct {
	Header Header `json:"header"`
	// Imported counts what was written.
	Imported Summary `json:"imported"`
	// Expired counts keys left out because they expired since the export.
	Expired int `json:"expired"`
	// Replaced counts keys that existed and were overwritten.
	Replaced int `json:"replaced"`
	// Batches is how many atomic batches were written.
	Batches int `json:"batches"`
}

// ConflictError: keys of the file already exist and Replace is off.
type ConflictError struct {
	Count int
	Keys  []string // the first few
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%d keys of the file already exist in the store (%q…); nothing was imported: import with --replace to overwrite them (a freshly started Gatehouse has already made its own signing keys, cookie keys and salt, which a restore replaces)", e.Count, e.Keys)
}

// Import reads the export in src into st. It reads src twice: first
// the whole file is verified (header, issuer, every line, the
// trailer's counts and checksum) and compared with the keys st already
// holds, and only then written, in atomic batches. So a damaged,
// truncated or foreign file, or one that would overwrite keys without
// Replace, leaves st as it was. If the store fails part-way (or another
// writer creates one of the keys meanwhile), the batches written so far
// stay and the result says how far it got.
func Import(ctx context.Context, st store.Store, src io.ReadSeeker, opt ImportOptions) (Result, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = 256
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	var res Result
	existing := map[string]struct{}{}
	err := st.Scan(ctx, "", func(r store.Record) error {
		if !r.IsSet() {
			existing[r.Key] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("listing the keys already in the store: %w", err)
	}
	conflict := &ConflictError{}
	h, _, err := Read(src, func(h Header) error { return opt.accept(h) }, func(e Entry) error {
		if _, ok := existing[e.Key]; ok && !e.IsSet() {
			conflict.Count++
			if len(conflict.Keys) < 5 {
				conflict.Keys = append(conflict.Keys, e.Key)
			}
		}
		return nil
	})
	res.Header = h
	if err != nil {
		return res, err
	}
	if conflict.Count > 0 && !opt.Replace {
		return res, conflict
	}
	res.Replaced = conflict.Count
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("rewinding the export: %w", err)
	}
	var ops []store.Op
	var pending Summary
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if err := st.Apply(ctx, ops...); err != nil {
			if errors.Is(err, store.ErrExists) {
				err = fmt.Errorf("a key of batch %d was created by someone else meanwhile: %w", res.Batches+1, err)
			}
			return fmt.Errorf("writing batch %d (%d values, %d sets written before it): %w", res.Batches+1, res.Imported.Values, res.Imported.Sets, err)
		}
		res.Batches++
		res.Imported.Values += pending.Values
		res.Imported.Sets += pending.Sets
		res.Imported.Members += pending.Members
		ops, pending = ops[:0], Summary{}
		return nil
	}
	_, _, err = Read(src, func(Header) error { return nil }, func(e Entry) error {
		if e.IsSet() {
			for _, m := range e.Members {
				ops = append(ops, store.SetAdd(e.Key, m))
			}
			pending.Sets++
			pending.Members += len(e.Members)
		} else {
			var ttl time.Duration
			if !e.Expires.IsZero() {
				if ttl = e.Expires.Sub(opt.Now()); ttl <= 0 {
					res.Expired++
					return nil
				}
			}
			if opt.Replace {
				ops = append(ops, store.Put(e.Key, e.Value, ttl))
			} else {
				ops = append(ops, store.Create(e.Key, e.Value, ttl))
			}
			pending.Values++
		}
		if len(ops) >= opt.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return res, err
}

// accept checks a header against the options.
func (opt ImportOptions) accept(h Header) error {
	if opt.Force {
		return nil
	}
	if h.Version != Version {
		return &FileError{Line: 1, Msg: fmt.Sprintf("format version %d, but this Gatehouse reads version %d (force to try anyway)", h.Version, Version)}
	}
	if h.Issuer != opt.Issuer {
		return &FileError{Line: 1, Msg: fmt.Sprintf("exported by issuer %q, not %q: tokens, subjects and keys belong to their issuer (force to import anyway)", h.Issuer, opt.Issuer)}
	}
	return nil
}
