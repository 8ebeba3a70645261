package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	netmail "net/mail"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/store"
)

// Message is one mail to send.
type Message struct {
	// To is the recipient: one bare address (see ParseAddress).
	To string
	// Template names the message: Activation, PasswordReset, MagicLink,
	// RegistrationWelcome or AccountExists.
	Template string
	// Data are the template's values. Keys the built-in templates use:
	// link (an absolute http(s) URL; required by activation,
	// password_reset and magic_link), code (required by magic_link),
	// username, name, client_name, and expires (a time.Duration, written
	// "15 minutes"). site (Config.Site) and to (the recipient) are added.
	// Values are strings, bools, integers, time.Duration or time.Time;
	// strings may not hold control characters (CR, LF: no header
	// injection) nor bidi controls, and at most 2048 bytes.
	Data map[string]any
}

// Config configures a Mailer.
type Config struct {
	// Store keeps the queue. Required.
	Store store.Store
	// From is the sender, e.g. "Acme <noreply@acme.example>". Required.
	From string
	// SMTP is the server that delivers; nil writes every message as a
	// .eml file into Outbox instead.
	SMTP *SMTP
	// Outbox is the directory of .eml files used without SMTP: created
	// 0700 when the first message is written, each file 0600. Required
	// when SMTP is nil.
	Outbox string
	// Templates, if set, is a directory whose files replace the built-in
	// templates of the same name (activation.txt, magic_link.html,
	// layout.html, ...).
	Templates string
	// Site names the service in messages (the "site" value); default:
	// the display name of From, else its domain.
	Site string
	// Attempts (default 10) and Backoff (default 5s, doubled after each
	// failure, at most an hour) shape retries: about 40 minutes in all.
	Attempts int
	Backoff  time.Duration
	// TTL bounds how long a message may wait in the store (default 24h).
	TTL    time.Duration
	Now    func() time.Time
	Logger *slog.Logger
	Audit  *audit.Log
}

// Stats counts messages since start.
type Stats struct {
	Queued, Delivered, Failed, GivenUp atomic.Int64
}

// Mailer renders messages, queues them in the store and delivers them.
type Mailer struct {
	cfg       Config
	from      *netmail.Address
	domain    string // of From: the right side of Message-IDs
	templates *templates
	transport transport
	lease     time.Duration
	wake      chan struct{}
	pass      sync.Mutex // one queue pass at a time: the transport keeps its connection
	Stats     Stats
}

// transport hands rendered messages on: to an SMTP server or the outbox.
// Calls come from one goroutine, one queue pass at a time.
type transport interface {
	// deliver hands on one message; a connection may stay open until
	// endPass.
	deliver(ctx context.Context, r *record, msg *gomail.Msg) error
	// endPass ends a pass over the queue.
	endPass()
}

// record is a queued message, rendered, with its progress.
type record struct {
	ID       string    `json:"id"`
	To       string    `json:"to"`
	Template string    `json:"template"`
	Subject  string    `json:"subject"`
	Text     string    `json:"text"`
	HTML     string    `json:"html"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at"`
}

const maxDataValue = 2048

// New checks cfg, loads the templates and returns a Mailer; Run
// delivers its queue.
func New(cfg Config) (*Mailer, error) {
	if cfg.Store == nil {
		return nil, errors.New("mail: a store is required")
	}
	if cfg.From == "" {
		return nil, errors.New("mail: a sender (from) is required")
	}
	from, err := ParseFrom(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: from: %w", err)
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 10
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 5 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mailer{cfg: cfg, from: from, domain: from.Address[strings.LastIndexByte(from.Address, '@')+1:],
		wake: make(chan struct{}, 1), lease: time.Minute}
	if m.cfg.Site == "" {
		m.cfg.Site = from.Name
	}
	if m.cfg.Site == "" {
		m.cfg.Site = m.domain
	}
	if m.templates, err = loadTemplates(cfg.Templates); err != nil {
		return nil, err
	}
	switch {
	case cfg.SMTP != nil && cfg.Outbox != "":
		return nil, errors.New("mail: an outbox is only used without smtp")
	case cfg.SMTP != nil:
		t, err := newSMTP(*cfg.SMTP)
		if err != nil {
			return nil, err
		}
		// A claimed message is left to its worker for a few of the
		// server's timeouts (dial, commands) before another takes it.
		m.lease = max(m.lease, 4*t.timeout)
		m.transport = t
	case cfg.Outbox == "":
		return nil, errors.New("mail: without smtp, an outbox directory is required")
	default:
		m.transport = &outbox{dir: cfg.Outbox, logger: cfg.Logger}
	}
	return m, nil
}

// Send renders msg and queues it; Run delivers it. An error means the
// message was refused (a bad address, an unknown template, missing or
// bad data, a template that fails) or could not be queued (the store is
// unreachable): nothing will be sent, and the caller must say so. Send
// never waits for the mail server.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	r, err := m.prepare(msg)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := m.cfg.Store.Apply(ctx, store.Create(keyMessage+r.ID, b, m.cfg.TTL), store.SetAdd(setQueue, r.ID)); err != nil {
		return fmt.Errorf("mail: queueing the message: %w", err)
	}
	m.Stats.Queued.Add(1)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// prepare checks and renders msg into a record ready to queue.
func (m *Mailer) prepare(msg Message) (*record, error) {
	to, err := ParseAddress(msg.To)
	if err != nil {
		return nil, fmt.Errorf("mail: recipient: %w", err)
	}
	need, ok := required[msg.Template]
	if !ok {
		return nil, fmt.Errorf("mail: no message template %q", msg.Template)
	}
	for _, k := range need {
		if v, ok := msg.Data[k]; !ok || v == "" {
			return nil, fmt.Errorf("mail: %s needs the value %q", msg.Template, k)
		}
	}
	data := map[string]any{"site": m.cfg.Site}
	for k, v := range msg.Data {
		if err := checkValue(k, v); err != nil {
			return nil, fmt.Errorf("mail: %s: %w", msg.Template, err)
		}
		data[k] = v
	}
	data["to"] = to
	subject, text, html, err := m.templates.render(msg.Template, data)
	if err != nil {
		return nil, fmt.Errorf("mail: rendering %s: %w", msg.Template, err)
	}
	now := m.cfg.Now()
	r := &record{ID: newID(), To: to, Template: msg.Template, Subject: subject, Text: text, HTML: html,
		Created: now, NextAt: now}
	// Compose it once now, so a message that could not be written is
	// refused here rather than given up later.
	g, err := m.compose(r)
	if err == nil {
		_, err = g.WriteTo(io.Discard)
	}
	if err != nil {
		return nil, fmt.Errorf("mail: composing %s: %w", msg.Template, err)
	}
	return r, nil
}

// checkValue refuses template values that could break out of where they
// are written: control characters (a CR LF in a subject starts a new
// header), bidi controls, links that are not absolute web URLs.
func checkValue(k string, v any) error {
	isLink := k == "link" || strings.HasSuffix(k, "_link") || strings.HasSuffix(k, "_url")
	switch v := v.(type) {
	case string:
		if len(v) > maxDataValue {
			return fmt.Errorf("the value %q is longer than %d bytes", k, maxDataValue)
		}
		if err := plainText(v); err != nil {
			return fmt.Errorf("the value %q %w", k, err)
		}
		if isLink {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
				return fmt.Errorf("the value %q is not an absolute http(s) URL", k)
			}
		}
	case bool, int, int64, time.Duration, time.Time:
		if isLink {
			return fmt.Errorf("the value %q is not an absolute http(s) URL", k)
		}
	default:
		return fmt.Errorf("the value %q is a %T (strings, bools, integers, durations and times only)", k, v)
	}
	return nil
}

// compose builds the RFC 5322 message of r: the same for the server and
// the outbox, and the same on every attempt (Message-ID and Date are
// those of the queued message).
func (m *Mailer) compose(r *record) (*gomail.Msg, error) {
	g := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	g.FromMailAddress(m.from)
	if err := g.To(r.To); err != nil {
		return nil, err
	}
	g.Subject(r.Subject)
	g.SetMessageIDWithValue(r.ID + "@" + m.domain)
	g.SetDateWithValue(r.Created)
	// RFC 3834: no vacation replies to a machine.
	g.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	g.SetBodyString(gomail.TypeTextPlain, r.Text)
	g.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return g, nil
}

// newID returns 128 random bits, hex: the queue key and Message-ID.
func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
