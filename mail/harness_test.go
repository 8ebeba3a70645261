package mail

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/gatehouse-idp/gatehouse/internal/freeport"
	"github.com/gatehouse-idp/gatehouse/internal/logtest"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
)

// python is Debian's interpreter, which has python3-aiosmtpd (a pyenv
// or other python first in PATH would not).
const python = "/usr/bin/python3"

// smtpd is a real SMTP server (testdata/smtpd.py, aiosmtpd) on loopback.
type smtpd struct {
	t    *testing.T
	addr string
	dir  string
	cmd  *exec.Cmd
}

type smtpdOptions struct {
	port           int    // 0: a free one
	mode           string // plain (default), starttls, tls
	cert           *testCert
	user, password string
	rejectRcpt     string
	authWithoutTLS bool
}

// startSMTPD runs the server until the test ends (or stop).
func startSMTPD(t *testing.T, o smtpdOptions) *smtpd {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import aiosmtpd").CombinedOutput(); err != nil {
		t.Fatalf("python3-aiosmtpd is not installed (run .ci/run, which installs it): %v %s", err, out)
	}
	if o.port == 0 {
		o.port = freePort(t)
	}
	s := &smtpd{t: t, addr: fmt.Sprintf("127.0.0.1:%d", o.port), dir: t.TempDir()}
	args := []string{"testdata/smtpd.py", "--port", fmt.Sprint(o.port), "--dir", s.dir}
	if o.mode != "" {
		args = append(args, "--mode", o.mode)
	}
	if o.cert != nil {
		args = append(args, "--cert", o.cert.certFile, "--key", o.cert.keyFile)
	}
	if o.user != "" {
		args = append(args, "--user", o.user, "--password", o.password)
	}
	if o.rejectRcpt != "" {
		args = append(args, "--reject-rcpt", o.rejectRcpt)
	}
	if o.authWithoutTLS {
		args = append(args, "--auth-without-tls")
	}
	s.cmd = exec.Command(python, args...)
	stdout, _ := s.cmd.StdoutPipe()
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			s.cmd.Wait()
			t.Fatalf("smtpd did not start: %s", stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("smtpd did not start in time")
	}
	return s
}

func (s *smtpd) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// received is one message the server accepted.
type received struct {
	MailFrom string   `json:"mail_from"`
	RcptTos  []string `json:"rcpt_tos"`
	Data     string   `json:"data"`
	TLS      bool     `json:"tls"`
	Login    *string  `json:"login"`
}

// received lists what the server accepted, oldest first.
func (s *smtpd) received() []received {
	s.t.Helper()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []received
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			s.t.Fatal(err)
		}
		var r received
		if err := json.Unmarshal(b, &r); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	return freeport.Must(t)
}

// testCert is a CA and a server certificate for 127.0.0.1 and localhost.
type testCert struct {
	certFile, keyFile string
	roots             *x509.CertPool
}

func newTestCert(t *testing.T) *testCert {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "smtp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := &testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), roots: x509.NewCertPool()}
	os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	c.roots.AddCert(caCert)
	return c
}

// clock is a settable time for the queue's back-off.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuffer collects JSON log lines.
type logBuffer struct{ logtest.Buffer }

// lines returns the logged records whose msg contains want.
func (l *logBuffer) lines(want string) []map[string]any {
	return l.Records(func(m map[string]any) bool { return strings.Contains(fmt.Sprint(m["msg"]), want) })
}

// env is a Mailer over an embedded store, with its clock and logs.
type env struct {
	m     *Mailer
	st    store.Store
	clock *clock
	logs  *logBuffer
	audit *logBuffer
}

// openStore opens (or reopens) an embedded store file.
func openStore(t *testing.T, path string, c *clock) store.Store {
	t.Helper()
	st, err := embedded.Open(path, embedded.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newEnv makes a Mailer from cfg, filling in a store, clock, logs and
// the sender when cfg leaves them out.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, logs: &logBuffer{}, audit: &logBuffer{}}
	if cfg.Store == nil {
		cfg.Store = openStore(t, filepath.Join(t.TempDir(), "gatehouse.db"), e.clock)
	}
	e.st = cfg.Store
	if cfg.From == "" {
		cfg.From = "Acme <noreply@acme.example>"
	}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	cfg.Audit = audit.New(slog.New(slog.NewJSONHandler(e.audit, nil)))
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e
}

// send queues a message and fails the test if it is refused.
func (e *env) send(t *testing.T, to, template string, data map[string]any) {
	t.Helper()
	if err := e.m.Send(context.Background(), Message{To: to, Template: template, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) queued(t *testing.T) int {
	t.Helper()
	n, err := e.m.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// parsed is a delivered message taken apart.
type parsed struct {
	header      netmail.Header
	text, html  string
	contentType string
}

// parseMessage reads an RFC 5322 message with a text and an HTML
// alternative, decoding the parts.
func parseMessage(t *testing.T, raw string) parsed {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, raw)
	}
	p := parsed{header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	p.contentType = mt
	if mt != "multipart/alternative" {
		t.Fatalf("content type %s, want multipart/alternative", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = part
		if part.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(part)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		types = append(types, ct)
		switch ct {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		}
	}
	if !slices.Equal(types, []string{"text/plain", "text/html"}) {
		t.Fatalf("parts %v, want text/plain then text/html", types)
	}
	return p
}

// subject decodes the Subject header (RFC 2047).
func (p parsed) subject(t *testing.T) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(p.header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
