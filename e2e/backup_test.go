package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/gatehouse-idp/gatehouse/store/backup"
)

// exportKeys exports c's store to file (unless it is empty) and reads
// back its counts and keys.
func exportKeys(t *testing.T, c *caddy, file string) (backup.Summary, map[string]bool) {
	t.Helper()
	if c != nil {
		if out, err := c.cli("", "store", "export", "--out", file); err != nil {
			t.Fatalf("store export: %v\n%s", err, out)
		}
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]bool{}
	_, sum, err := backup.Read(f, func(backup.Header) error { return nil }, func(e backup.Entry) error {
		keys[e.Key] = true
		return nil
	})
	if err != nil {
		t.Fatalf("the CLI's export does not read back: %v", err)
	}
	return sum, keys
}

// TestBackupEmbeddedToRedis moves a running Gatehouse from the embedded
// store to Redis with export and import: afterwards the same user signs
// in with the same password, the JWKS is the same, the browser's session
// and the tokens issued before still work, and run-time clients are
// there. Damaged files are refused without writing anything.
func TestBackupEmbeddedToRedis(t *testing.T) {
	s := newIDP(t, "")
	s.addUser(t, "alice", "correct horse battery")
	if out, err := s.caddy.cli("", "client", "add", "extra", "--redirect-uri", s.redirect); err != nil {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	if out, err := s.caddy.cli("", "keys", "rotate"); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	rp := s.client(t)
	b := newBrowser(t, s.appHost)
	v := oauth2.GenerateVerifier()
	q := s.authorize(t, b, rp.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "alice", "correct horse battery")
	tok, err := rp.conf.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(v))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v", err)
	}
	kids := jwksKids(t, s.issuer)
	if len(kids) != 2 {
		t.Fatalf("JWKS %v, want the rotated key and its predecessor", kids)
	}

	dir := t.TempDir()
	plain, gz := filepath.Join(dir, "backup.jsonl"), filepath.Join(dir, "backup.jsonl.gz")
	sum, exported := exportKeys(t, s.caddy, plain)
	if sum.Values < 5 || sum.Sets < 1 {
		t.Fatalf("export holds only %+v", sum)
	}
	if out, err := s.caddy.cli("", "store", "export", "--out", gz); err != nil {
		t.Fatalf("gzip export: %v\n%s", err, out)
	}
	for _, f := range []string{plain, gz} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, fi.Mode())
		}
	}
	if raw, _ := os.ReadFile(gz); !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		t.Fatal("the .gz export is not gzip")
	}
	if ev := findAudit(t, s.caddy, "admin_action", nil); !slices.ContainsFunc(ev, func(m map[string]any) bool {
		target, _ := m["target"].(string)
		return strings.HasPrefix(target, "store export: ")
	}) {
		t.Fatalf("no audit line for the export: %v", ev)
	}

	// The move: the same site, now on Redis.
	s.caddy.stop()
	redisAddr := startRedisServer(t)
	s.caddy = startCaddy(t, s.caddyfile("store redis redis://"+redisAddr+"/0"))

	// Damaged files are refused and write nothing.
	newKids := jwksKids(t, s.issuer)
	raw, _ := os.ReadFile(plain)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	truncated := filepath.Join(dir, "truncated.jsonl")
	os.WriteFile(truncated, bytes.Join(lines[:len(lines)-2], nil), 0o600)
	altered := filepath.Join(dir, "altered.jsonl")
	i := bytes.Index(raw, []byte(`"value":"`)) + len(`"value":"`)
	alt := bytes.Clone(raw)
	alt[i] ^= 1 // still base64
	os.WriteFile(altered, alt, 0o600)
	for file, want := range map[string]string{truncated: "truncated", altered: "checksum mismatch", gz + ".missing": "no such file"} {
		out, err := s.caddy.cli("", "store", "import", file, "--replace")
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("import of %s: %v, want an error saying %q:\n%s", filepath.Base(file), err, want, out)
		}
	}
	// Without --replace the fresh instance's own keys refuse it.
	if out, err := s.caddy.cli("", "store", "import", gz); err == nil || !strings.Contains(out, "--replace") {
		t.Fatalf("import over the new instance's keys: %v\n%s", err, out)
	}
	_, after := exportKeys(t, s.caddy, filepath.Join(dir, "after.jsonl"))
	users, _ := s.caddy.cli("", "user", "list")
	clients, _ := s.caddy.cli("", "client", "list")
	if strings.Contains(users, "alice") || strings.Contains(clients, "extra") || !slices.Equal(jwksKids(t, s.issuer), newKids) ||
		len(after) >= len(exported) {
		t.Fatalf("refused imports wrote to the store: %d keys\n%s\n%s", len(after), users, clients)
	}

	out, err := s.caddy.cli("", "store", "import", gz, "--replace")
	if err != nil || !strings.Contains(out, "configuration reloaded") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got := jwksKids(t, s.issuer); !slices.Equal(got, kids) {
		t.Fatalf("JWKS after import %v, want %v", got, kids)
	}
	rp = s.client(t) // discovery and keys fetched from the new instance
	verify := rp.provider.Verifier(&oidc.Config{ClientID: "app"})

	// The browser's session: no login page, and a code that exchanges.
	v2 := oauth2.GenerateVerifier()
	q2 := s.authorize(t, b, rp.conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(v2)), "", "")
	tok2, err := rp.conf.Exchange(rp.ctx, q2.Get("code"), oauth2.VerifierOption(v2))
	if err != nil {
		t.Fatalf("exchange after the move: %v", err)
	}
	idt, err := verify.Verify(rp.ctx, tok2.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("ID token after the move: %v", err)
	}
	// Tokens issued before the move: the access token reads userinfo,
	// the refresh token refreshes.
	ui, err := rp.provider.UserInfo(rp.ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != idt.Subject {
		t.Fatalf("userinfo with the access token from before the move: %v", err)
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	if _, err := rp.conf.TokenSource(rp.ctx, &expired).Token(); err != nil {
		t.Fatalf("refresh token from before the move: %v", err)
	}
	// The same password in a new browser.
	nb := newBrowser(t, s.appHost)
	v3 := oauth2.GenerateVerifier()
	q3 := s.authorize(t, nb, rp.conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(v3)), "alice", "correct horse battery")
	tok3, err := rp.conf.Exchange(rp.ctx, q3.Get("code"), oauth2.VerifierOption(v3))
	if err != nil {
		t.Fatalf("sign-in with the old password: %v", err)
	}
	if idt3, err := verify.Verify(rp.ctx, tok3.Extra("id_token").(string)); err != nil || idt3.Subject != idt.Subject {
		t.Fatalf("the user has another subject after the move: %v", err)
	}
	if out, err := s.caddy.cli("", "client", "list"); err != nil || !strings.Contains(out, "extra") {
		t.Fatalf("run-time client lost: %v\n%s", err, out)
	}
	if ev := findAudit(t, s.caddy, "admin_action", nil); !slices.ContainsFunc(ev, func(m map[string]any) bool {
		target, _ := m["target"].(string)
		return strings.HasPrefix(target, "store import: ")
	}) {
		t.Fatalf("no audit line for the import: %v", ev)
	}
}

// TestExportCutShort: Redis goes away while an export streams. The
// response is cut (a client sees an error, not a short file that looks
// whole), the failure is audited, and an export asked for while Redis is
// down gets an error answer and leaves no file.
func TestExportCutShort(t *testing.T) {
	redisAddr := startRedisServer(t)
	s := newIDP(t, "store redis redis://"+redisAddr+"/0")
	ctx := context.Background()
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rdb.Close()
	// Enough records in Gatehouse's key space that the export is still
	// reading Redis when the test has read its first line.
	for i := 0; i < 300_000; i += 10_000 {
		p := rdb.Pipeline()
		for j := i; j < i+10_000; j++ {
			p.Set(ctx, fmt.Sprintf("gatehouse:kv:filler:%06d", j), "x", 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + s.caddy.admin + "/gatehouse/store/export")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %v %v", err, resp)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, backup.Format) {
		t.Fatalf("first line %q: %v", line, err)
	}
	rdb.Shutdown(ctx) // the server stops; the error is its goodbye
	if _, err := io.Copy(io.Discard, br); err == nil {
		t.Fatal("the export ended cleanly although Redis went away part-way")
	}
	if ev := findAudit(t, s.caddy, "admin_action", nil); !slices.ContainsFunc(ev, func(m map[string]any) bool {
		target, _ := m["target"].(string)
		return strings.HasPrefix(target, "store export (failed after ")
	}) {
		t.Fatalf("the failed export is not in the audit trail: %v", ev)
	}
	out := filepath.Join(t.TempDir(), "down.jsonl")
	if msg, err := s.caddy.cli("", "store", "export", "--out", out); err == nil || !strings.Contains(msg, "exporting the store") {
		t.Fatalf("export with Redis down: %v\n%s", err, msg)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Fatalf("a failed export left %v", entries)
	}
}
