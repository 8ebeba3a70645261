package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// smtpd is a real SMTP server (mail/testdata/smtpd.py, Debian's
// python3-aiosmtpd) on loopback, recording every message it accepts.
type smtpd struct {
	t    *testing.T
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startSMTPD(t *testing.T) *smtpd {
	t.Helper()
	const python = "/usr/bin/python3" // Debian's, which has aiosmtpd
	if out, err := exec.Command(python, "-c", "import aiosmtpd").CombinedOutput(); err != nil {
		t.Fatalf("python3-aiosmtpd is not installed (run .ci/run, which installs it): %v %s", err, out)
	}
	port := freePort(t)
	s := &smtpd{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: t.TempDir()}
	s.cmd = exec.Command(python, "../mail/testdata/smtpd.py", "--port", fmt.Sprint(port), "--dir", s.dir)
	stdout, _ := s.cmd.StdoutPipe()
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill() // this server, by its PID
		_ = s.cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("smtpd did not start: %s", stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("smtpd did not start in time")
	}
	return s
}

// message is one mail the server accepted, decoded.
type message struct {
	file, to, subject, text string
}

var (
	mailLink = regexp.MustCompile(`https?://[^\s"<>]+/mail\?t=[A-Za-z0-9_-]+`)
	mailCode = regexp.MustCompile(`(?m)^\s+(\d{8})\s*$`)
)

// link is the sign-in link of the message ("" when it has none).
func (m message) link() string { return mailLink.FindString(m.text) }

// code is the code to type on another device ("" when it has none).
func (m message) code() string {
	if c := mailCode.FindStringSubmatch(m.text); c != nil {
		return c[1]
	}
	return ""
}

// messages lists what the server accepted, oldest first.
func (s *smtpd) messages() []message {
	s.t.Helper()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []message
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			s.t.Fatal(err)
		}
		var rec struct {
			RcptTos []string `json:"rcpt_tos"`
			Data    string   `json:"data"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, s.decode(e.Name(), strings.Join(rec.RcptTos, ","), rec.Data))
	}
	slices.SortFunc(out, func(a, b message) int { return strings.Compare(a.file, b.file) })
	return out
}

// decode reads a multipart/alternative message: its subject and text part.
func (s *smtpd) decode(file, to, data string) message {
	msg, err := netmail.ReadMessage(strings.NewReader(data))
	if err != nil {
		s.t.Fatalf("message %s: %v", file, err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	m := message{file: file, to: to, subject: subject}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		s.t.Fatalf("message %s: %v", file, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var body io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(p)
		}
		b, _ := io.ReadAll(body)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			m.text = string(b)
		}
	}
	return m
}

// waitFor waits for the n-th message (counting from 1) to to and
// returns it.
func (s *smtpd) waitFor(to string, n int) message {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var got []message
		for _, m := range s.messages() {
			if m.to == to {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got[n-1]
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("no message %d to %s (got %d messages in all)", n, to, len(s.messages()))
	return message{}
}

// nth waits until n messages arrived (to anyone) and returns the n-th,
// counting from 1.
func (s *smtpd) nth(n int) message {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got := s.messages(); len(got) >= n {
			return got[n-1]
		}
	}
	s.t.Fatalf("%d messages arrived, want %d", len(s.messages()), n)
	return message{}
}

// count is how many messages went to to.
func (s *smtpd) count(to string) int {
	n := 0
	for _, m := range s.messages() {
		if m.to == to {
			n++
		}
	}
	return n
}
