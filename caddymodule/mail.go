package caddymodule

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/store"
)

// MailConfig is where the messages to people go (account activation,
// password forgotten, magic links): an SMTP server, or without one an
// outbox directory of .eml files, so that trying Gatehouse out needs no
// mail server.
type MailConfig struct {
	// From is the sender of every message, e.g.
	// "Acme <noreply@acme.example>"; its display name is the "site" of
	// the messages. Default: noreply@<the issuer's host>.
	From string `json:"from,omitempty"`
	// SMTP is the mail server; without it messages go to Outbox.
	SMTP *MailSMTPConfig `json:"smtp,omitempty"`
	// Templates is a directory whose files (activation.txt,
	// magic_link.html, layout.html, ...) replace the built-in message
	// templates of the same name.
	Templates string `json:"templates,omitempty"`
	// Outbox is the directory the messages are written to without SMTP
	// (0700; each message a 0600 .eml file). Default: gatehouse/outbox
	// in Caddy's data directory.
	Outbox string `json:"outbox,omitempty"`
}

// MailSMTPConfig is an SMTP server.
type MailSMTPConfig struct {
	// Address is host:port, e.g. smtp.acme.example:587.
	Address string `json:"address"`
	// Username and Password log in; placeholders such as
	// {env.SMTP_PASSWORD} are replaced at start.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Security is tls (implicit TLS, port 465), starttls (mandatory: a
	// server that does not offer it gets nothing) or none (plain text:
	// for a relay on this machine; with credentials only to a loopback
	// host). Default: tls on port 465, starttls on any other.
	Security string `json:"security,omitempty"`
	// Timeout bounds connecting and each command (default 30s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// validate checks the settings that need no environment; values that
// hold a placeholder are checked once it is replaced, at start.
func (mc *MailConfig) validate() error {
	if mc.From != "" && !strings.Contains(mc.From, "{") {
		if _, err := mail.ParseFrom(mc.From); err != nil {
			return fmt.Errorf("from: %w", err)
		}
	}
	if mc.SMTP == nil {
		return nil
	}
	if mc.Outbox != "" {
		return fmt.Errorf("outbox is only used without smtp")
	}
	s := mc.SMTP.settings()
	if strings.Contains(s.Addr, "{") {
		s.Addr = "placeholder.invalid:25"
	}
	return s.Validate()
}

func (sc *MailSMTPConfig) settings() mail.SMTP {
	return mail.SMTP{Addr: sc.Address, Username: sc.Username, Password: sc.Password, Security: sc.Security,
		Timeout: time.Duration(sc.Timeout)}
}

// newMailer builds the app's Mailer; without a mail block, messages go
// to the default outbox from noreply@<issuer host>.
func (a *App) newMailer(st store.Store) (*mail.Mailer, error) {
	var mc MailConfig
	if a.Mail != nil {
		mc = *a.Mail
	}
	repl := caddy.NewReplacer()
	mc.From = repl.ReplaceKnown(mc.From, "")
	mc.Templates = repl.ReplaceKnown(mc.Templates, "")
	mc.Outbox = repl.ReplaceKnown(mc.Outbox, "")
	if mc.From == "" {
		host := "localhost"
		if u, err := url.Parse(a.Issuer); err == nil && net.ParseIP(u.Hostname()) == nil {
			host = u.Hostname()
		}
		mc.From = "noreply@" + host
	}
	cfg := mail.Config{Store: st, From: mc.From, Templates: mc.Templates, Logger: a.logger, Audit: a.audit}
	if mc.SMTP != nil {
		sc := *mc.SMTP
		sc.Address = repl.ReplaceKnown(sc.Address, "")
		sc.Username = repl.ReplaceKnown(sc.Username, "")
		sc.Password = repl.ReplaceKnown(sc.Password, "")
		s := sc.settings()
		cfg.SMTP = &s
		if host, _, err := net.SplitHostPort(sc.Address); err == nil && sc.Security == mail.SecurityNone && !isLocalHost(host) {
			a.logger.Warn("gatehouse mail: messages, sign-in links and all, go to the mail server in plain text", "smtp", sc.Address)
		}
	} else {
		cfg.Outbox = mc.Outbox
		if cfg.Outbox == "" {
			cfg.Outbox = filepath.Join(caddy.AppDataDir(), "gatehouse", "outbox")
		}
	}
	m, err := mail.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("gatehouse: %w", err)
	}
	return m, nil
}

// Mailer returns the app's mailer: the chain's mail modules send
// through it.
func (a *App) Mailer() *mail.Mailer { return a.mailer }

// chainMailer is the mailer as the chain's modules see it.
type chainMailer struct{ m *mail.Mailer }

func (c chainMailer) Send(ctx context.Context, m chain.Mail) error {
	return c.m.Send(ctx, mail.Message{To: m.To, Template: m.Template, Data: m.Data})
}
