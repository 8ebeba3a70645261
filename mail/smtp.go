package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// Security settings of an SMTP connection.
const (
	// SecurityTLS is implicit TLS from the first byte (RFC 8314), as on
	// port 465.
	SecurityTLS = "tls"
	// SecurityStartTLS upgrades the connection with STARTTLS (RFC 3207)
	// and refuses a server that does not offer it: nothing is sent in
	// plain text.
	SecurityStartTLS = "starttls"
	// SecurityNone is plain text: for a relay on this machine or a test.
	// With credentials it is refused unless the host is a loopback one.
	SecurityNone = "none"
)

// SMTP is a mail server.
type SMTP struct {
	// Addr is host:port, e.g. smtp.example.com:587.
	Addr string
	// Username and Password log in (SMTP AUTH: SCRAM, else PLAIN or
	// LOGIN, only over TLS or to a loopback host); both empty: no login.
	Username, Password string
	// Security is SecurityTLS, SecurityStartTLS or SecurityNone; empty:
	// TLS on port 465, STARTTLS on any other.
	Security string
	// Timeout bounds connecting and each command (default 30s).
	Timeout time.Duration
	// TLSConfig, if set, is used for TLS, e.g. with RootCAs for a
	// private CA; its ServerName defaults to the host.
	TLSConfig *tls.Config
}

// Validate checks the settings without connecting.
func (s *SMTP) Validate() error {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil || host == "" || strings.IndexFunc(host, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r == ':' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return fmt.Errorf("smtp: %q is not host:port (like smtp.example.com:587)", s.Addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("smtp: %q has no valid port", s.Addr)
	}
	switch s.Security {
	case "", SecurityTLS, SecurityStartTLS, SecurityNone:
	default:
		return fmt.Errorf("smtp: security must be %s, %s or %s, not %q", SecurityTLS, SecurityStartTLS, SecurityNone, s.Security)
	}
	if (s.Username == "") != (s.Password == "") {
		return errors.New("smtp: username and password go together")
	}
	if s.security() == SecurityNone && s.Username != "" && !isLoopback(host) {
		return fmt.Errorf("smtp: credentials are not sent in plain text to %s; use tls or starttls (none is for a relay on this machine)", host)
	}
	if s.Timeout < 0 {
		return errors.New("smtp: the timeout must be positive")
	}
	return nil
}

// security is the effective setting.
func (s *SMTP) security() string {
	if s.Security != "" {
		return s.Security
	}
	if strings.HasSuffix(s.Addr, ":465") {
		return SecurityTLS
	}
	return SecurityStartTLS
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// smtpTransport delivers over one connection per queue pass.
type smtpTransport struct {
	addr    string
	client  *gomail.Client
	timeout time.Duration
	tls     *tls.Config // for implicit TLS
	raw     net.Conn    // the connection being set up, closed if that fails
	conn    *smtp.Client
	// dialErr is the pass's failed connection, the answer for the rest
	// of the pass (each message counts an attempt, without a new dial).
	dialErr error
}

func newSMTP(s SMTP) (*smtpTransport, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	t := &smtpTransport{addr: s.Addr, timeout: s.Timeout}
	if t.timeout == 0 {
		t.timeout = 30 * time.Second
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		tc = s.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	opts := []gomail.Option{gomail.WithPort(p), gomail.WithTimeout(t.timeout), gomail.WithTLSConfig(tc),
		gomail.WithDialContextFunc(t.dial)}
	switch s.security() {
	case SecurityTLS:
		// Dialled by t.dial; no STARTTLS on top.
		t.tls = tc
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case SecurityStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case SecurityNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.Username != "" {
		mechs := []gomail.SMTPAuthType{gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin}
		if s.security() == SecurityNone {
			// Validate allowed it for a loopback host only.
			mechs = []gomail.SMTPAuthType{gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc}
		}
		opts = append(opts, gomail.WithOpportunisticSMTPAuth(mechs...), gomail.WithUsername(s.Username), gomail.WithPassword(s.Password))
	}
	c, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp: %w", err)
	}
	t.client = c
	return t, nil
}

// dial opens the connection (with implicit TLS when set) and keeps it,
// so that it is closed when setting up the session fails later on.
func (t *smtpTransport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.timeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if t.tls != nil {
		tc := tls.Client(conn, t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	t.raw = conn
	return conn, nil
}

func (t *smtpTransport) deliver(ctx context.Context, _ *record, msg *gomail.Msg) error {
	if t.dialErr != nil {
		return t.dialErr
	}
	if t.conn == nil {
		t.raw = nil
		c, err := t.client.DialToSMTPClientWithContext(ctx)
		if err != nil {
			if t.raw != nil {
				t.raw.Close()
			}
			t.dialErr = fmt.Errorf("connecting to %s: %w", t.addr, err)
			return t.dialErr
		}
		t.conn = c
	}
	if err := t.client.SendWithSMTPClient(t.conn, msg); err != nil {
		// The session may be in any state: the next message gets a new one.
		t.hangUp()
		return err
	}
	return nil
}

func (t *smtpTransport) endPass() {
	t.hangUp()
	t.dialErr = nil
}

func (t *smtpTransport) hangUp() {
	if t.conn == nil {
		return
	}
	if err := t.client.CloseWithSMTPClient(t.conn); err != nil {
		t.conn.Close()
	}
	t.conn = nil
}
