package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/store/backup"
)

// storeCommand is `caddy gatehouse store export|import`.
func storeCommand() *cobra.Command {
	st := &cobra.Command{Use: "store", Short: "Back up and restore the store (export, import)"}
	export := &cobra.Command{
		Use:   "export [--out FILE] [--gzip]",
		Short: "Write every live record of the store to a file (mode 0600: it holds the signing keys)",
		Args:  cobra.NoArgs,
		RunE:  runExport,
	}
	export.Flags().String("out", "", "File to write (default: standard output); a name ending in .gz implies --gzip")
	export.Flags().Bool("gzip", false, "Compress the export")
	imp := &cobra.Command{
		Use:   "import <file> [--replace] [--force] [--no-reload]",
		Short: "Read an export into the store of the running Caddy",
		Args:  cobra.ExactArgs(1),
		RunE:  runImport,
	}
	imp.Flags().Bool("replace", false, "Overwrite keys that already exist (a restore into a freshly started Gatehouse needs it)")
	imp.Flags().Bool("force", false, "Accept a file of another issuer or format version")
	imp.Flags().Bool("no-reload", false, "Do not reload Caddy's configuration afterwards")
	st.AddCommand(export, imp)
	return st
}

func runExport(c *cobra.Command, _ []string) error {
	out, _ := c.Flags().GetString("out")
	gz, _ := c.Flags().GetBool("gzip")
	path := "/gatehouse/store/export"
	if gz || strings.HasSuffix(out, ".gz") {
		path += "?gzip=1"
	}
	resp, err := adminRequest(c, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var dst io.Writer = c.OutOrStdout()
	var tmp *os.File
	if out != "" {
		// Written beside its final name and renamed when complete: an
		// interrupted export never leaves a file that looks whole.
		if tmp, err = os.CreateTemp(filepath.Dir(out), ".gatehouse-export-*"); err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		dst = tmp
	}
	// Everything received is checked as it is written: a connection cut
	// part-way makes a file without its end line, and an error here.
	_, sum, err := backup.Read(io.TeeReader(resp.Body, dst), func(backup.Header) error { return nil },
		func(backup.Entry) error { return nil })
	if err != nil {
		return fmt.Errorf("the export is incomplete or damaged (%w); no file was written", err)
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			return err
		}
		fmt.Fprintf(c.ErrOrStderr(), "exported %d values and %d sets to %s\n", sum.Values, sum.Sets, out)
	}
	fmt.Fprintln(c.ErrOrStderr(), "the export holds the signing and cookie keys in the clear: keep it like a private key")
	return nil
}

func runImport(c *cobra.Command, args []string) error {
	f := c.Flags()
	replace, _ := f.GetBool("replace")
	force, _ := f.GetBool("force")
	noReload, _ := f.GetBool("no-reload")
	file, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer file.Close()
	path := "/gatehouse/store/import?replace=" + flag01(replace) + "&force=" + flag01(force)
	resp, err := adminRequest(c, http.MethodPost, path, http.Header{"Content-Type": {"application/octet-stream"}}, file)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res backup.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	fmt.Fprintf(c.OutOrStdout(), "imported %d values and %d sets (%d set members) in %d batches; %d keys replaced, %d expired since the export\n",
		res.Imported.Values, res.Imported.Sets, res.Imported.Members, res.Batches, res.Replaced, res.Expired)
	if noReload {
		return nil
	}
	return reloadRunning(c)
}

func flag01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// reloadRunning loads the running configuration again (as `caddy reload
// --force` does), so that everything read from the store at start — the
// pairwise salt, the keys, the clients — is read again after an import.
func reloadRunning(c *cobra.Command) error {
	resp, err := adminRequest(c, http.MethodGet, "/config/", nil, nil)
	if err != nil {
		return fmt.Errorf("imported, but reading the configuration to reload it failed (run caddy reload --force): %w", err)
	}
	cfg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(bytes.TrimSpace(cfg)) == 0 || bytes.Equal(bytes.TrimSpace(cfg), []byte("null")) {
		return errors.New("imported, but the running configuration could not be read to reload it (run caddy reload --force)")
	}
	resp, err = adminRequest(c, http.MethodPost, "/load", http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"must-revalidate"}}, bytes.NewReader(cfg))
	if err != nil {
		return fmt.Errorf("imported, but reloading the configuration failed (run caddy reload --force): %w", err)
	}
	resp.Body.Close()
	fmt.Fprintln(c.OutOrStdout(), "configuration reloaded")
	return nil
}
