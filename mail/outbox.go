package mail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	gomail "github.com/wneessen/go-mail"
)

// outbox writes each message as one .eml file (RFC 5322, exactly what
// would go to a server) into a directory: the quick start needs no mail
// server, and the person trying it out opens the file.
type outbox struct {
	dir    string
	logger *slog.Logger
	warn   sync.Once
}

func (o *outbox) deliver(_ context.Context, r *record, msg *gomail.Msg) error {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if fi, err := os.Stat(o.dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		o.warn.Do(func() {
			o.logger.Warn("gatehouse mail: the outbox can be read by other users of this machine, and its messages hold sign-in links",
				"dir", o.dir, "mode", fi.Mode().Perm().String())
		})
	}
	// Written aside, then renamed: a reader never sees half a message,
	// and a retry after a crash replaces the file of the same name.
	name := r.Created.UTC().Format("20060102T150405Z") + "-" + r.Template + "-" + r.ID + ".eml"
	f, err := os.CreateTemp(o.dir, ".writing-*")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	tmp := f.Name()
	_, err = msg.WriteTo(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(o.dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("outbox: %w", err)
	}
	o.logger.Info("gatehouse mail: no smtp server configured; message written to the outbox",
		"file", filepath.Join(o.dir, name), "to", r.To, "template", r.Template)
	return nil
}

func (o *outbox) endPass() {}
