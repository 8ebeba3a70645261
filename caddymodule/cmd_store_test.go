package caddymodule

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store/backup"
)

// runCLI runs `caddy gatehouse args...` in process against addr.
func runCLI(addr string, args ...string) error {
	root := &cobra.Command{Use: "gatehouse", SilenceUsage: true, SilenceErrors: true}
	buildCommand(root)
	root.SetArgs(append(args, "--address", addr))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root.Execute()
}

// The CLI writes an export only when all of it arrived: a response cut
// part-way (as the admin API cuts a failing export) or one that ends
// early leaves no file, a whole one lands with mode 0600.
func TestExportFileOnlyWhenWhole(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d"} {
		st.Set(ctx, k, bytes.Repeat([]byte(k), 1000), 0)
	}
	var full bytes.Buffer
	if _, err := backup.Export(ctx, st, &full, "https://auth.example.com"); err != nil {
		t.Fatal(err)
	}
	var send func(w http.ResponseWriter)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { send(w) }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	cases := map[string]func(w http.ResponseWriter){
		"cut": func(w http.ResponseWriter) {
			w.Write(full.Bytes()[:full.Len()/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		},
		"short": func(w http.ResponseWriter) { w.Write(full.Bytes()[:full.Len()-10]) },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			send = fn
			dir := t.TempDir()
			err := runCLI(addr, "store", "export", "--out", filepath.Join(dir, "x.jsonl"))
			if err == nil || !strings.Contains(err.Error(), "no file was written") {
				t.Fatalf("export = %v", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
	send = func(w http.ResponseWriter) { w.Write(full.Bytes()) }
	out := filepath.Join(t.TempDir(), "x.jsonl")
	if err := runCLI(addr, "store", "export", "--out", out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	fi, _ := os.Stat(out)
	if err != nil || !bytes.Equal(got, full.Bytes()) || fi.Mode().Perm() != 0o600 {
		t.Fatalf("written %d bytes (%v), mode %v", len(got), err, fi.Mode())
	}
}
