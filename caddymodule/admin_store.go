package caddymodule

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/store/backup"
)

// maxImportBytes bounds an uploaded export (as sent, so compressed when
// gzip).
const maxImportBytes = 1 << 30

// errStreamCut: a handler failed after its response had started; the
// admin wrapper cuts the connection so that the client sees a broken
// response, not a complete-looking one.
var errStreamCut = errors.New("response cut short")

// exportStore streams every live record of the store (see package
// store/backup for the format; ?gzip=1 compresses it). It is a GET but
// audited: the file holds the signing and cookie keys.
func exportStore(a *App, w http.ResponseWriter, r *http.Request) error {
	setAdminTarget(r, "store export")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/jsonl")
	sent := &countingWriter{w: w}
	var out io.Writer = sent
	if r.URL.Query().Get("gzip") == "1" {
		w.Header().Set("Content-Type", "application/gzip")
		zw := gzip.NewWriter(sent)
		defer zw.Close()
		out = zw
	}
	sum, err := backup.Export(r.Context(), a.store, out, a.Issuer)
	if err != nil {
		setAdminTarget(r, fmt.Sprintf("store export (failed after %d values, %d sets)", sum.Values, sum.Sets))
		if sent.n == 0 {
			return err // nothing sent yet: an error answer
		}
		// Part of the file went out with a 200: the connection is cut,
		// so the client sees a broken response, and the file lacks its
		// end line, which import refuses.
		a.logger.Error("gatehouse: store export failed part-way", "error", err)
		return fmt.Errorf("%w: %v", errStreamCut, err)
	}
	setAdminTarget(r, fmt.Sprintf("store export: %d values, %d sets", sum.Values, sum.Sets))
	return nil
}

// importStore reads an uploaded export into the store: ?replace=1
// overwrites existing keys, ?force=1 accepts another issuer's or
// version's file. The upload is kept in a private temporary file while
// it is verified as a whole, so a damaged file writes nothing.
func importStore(a *App, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opt := backup.ImportOptions{Issuer: a.Issuer, Replace: q.Get("replace") == "1", Force: q.Get("force") == "1"}
	setAdminTarget(r, "store import")
	// Caddy's admin server gives a request 10s to arrive; a large file
	// on a slow link needs longer.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Minute))
	dir := filepath.Join(caddy.AppDataDir(), "gatehouse")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "import-*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, http.MaxBytesReader(w, r.Body, maxImportBytes)); err != nil {
		return badRequest("reading the uploaded export: %v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	res, err := backup.Import(r.Context(), a.store, f, opt)
	var conflict *backup.ConflictError
	switch {
	case errors.As(err, &conflict):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Message: err.Error()}
	case backup.IsFileError(err):
		return badRequest("%v", err)
	case err != nil:
		setAdminTarget(r, fmt.Sprintf("store import (failed after %d values, %d sets)", res.Imported.Values, res.Imported.Sets))
		return fmt.Errorf("importing: %w (%d values and %d sets were written in %d batches)", err, res.Imported.Values, res.Imported.Sets, res.Batches)
	}
	setAdminTarget(r, fmt.Sprintf("store import: %d values, %d sets (%d replaced)", res.Imported.Values, res.Imported.Sets, res.Replaced))
	// The cookie and signing keys this instance holds in memory follow
	// the store at once; the rest (the pairwise salt, caches) at the
	// next config load, which the CLI does right after.
	if err := a.browser.Sync(r.Context()); err != nil {
		return err
	}
	if err := a.keys.Sync(r.Context()); err != nil {
		return err
	}
	writeAdminJSON(w, http.StatusOK, res)
	return nil
}

// countingWriter counts the bytes that went to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
