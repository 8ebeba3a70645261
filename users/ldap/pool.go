package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-idp/gatehouse/users"
)

// pool holds at most cap(slots) connections to the server, each used by
// one operation at a time; idle ones are kept for the next. Waiting for
// a connection, dialling and every request are bounded by timeout, so a
// server that is down or slow fails sign-ins fast instead of piling
// them up.
type pool struct {
	url      string
	startTLS bool
	tls      *tls.Config
	timeout  time.Duration
	slots    chan struct{}

	mu     sync.Mutex
	idle   []*goldap.Conn
	closed bool
}

func newPool(url string, startTLS bool, tc *tls.Config, size int, timeout time.Duration) *pool {
	return &pool{url: url, startTLS: startTLS, tls: tc, timeout: timeout, slots: make(chan struct{}, size)}
}

// errClosed: the source was closed (its configuration replaced).
var errClosed = errors.New("ldap source closed")

// do runs fn on a connection. users.ErrBusy: every connection stayed in
// use for the whole timeout.
func (p *pool) do(ctx context.Context, fn func(*goldap.Conn) error) error {
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
	case <-t.C:
		return users.ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	c, reused, err := p.take()
	if err != nil {
		return err
	}
	err = fn(c)
	if broken(c, err) && reused {
		// An idle connection the server dropped meanwhile (a restart,
		// a firewall forgetting idle connections): once more on a new
		// one. fn only searches and binds, so running it again changes
		// nothing (at worst a password answer lost on the way counts
		// twice at the server).
		c.Close()
		if c, err = p.dial(); err != nil {
			return err
		}
		err = fn(c)
	}
	if broken(c, err) {
		c.Close()
	} else {
		p.put(c)
	}
	return err
}

// take returns an idle connection (reused) or a new one.
func (p *pool) take() (c *goldap.Conn, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errClosed
	}
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if !c.IsClosing() {
			p.mu.Unlock()
			return c, true, nil
		}
		c.Close()
	}
	p.mu.Unlock()
	c, err = p.dial()
	return c, false, err
}

func (p *pool) put(c *goldap.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
}

func (p *pool) dial() (*goldap.Conn, error) {
	c, err := goldap.DialURL(p.url, goldap.DialWithDialer(&net.Dialer{Timeout: p.timeout}), goldap.DialWithTLSConfig(p.tls))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", p.url, err)
	}
	c.SetTimeout(p.timeout)
	if p.startTLS {
		if err := c.StartTLS(p.tls); err != nil {
			c.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", p.url, err)
		}
	}
	return c, nil
}

// broken reports whether c must not be reused after err: the
// connection failed, as opposed to the server answering with a result
// code (wrong password, no such entry).
func broken(c *goldap.Conn, err error) bool {
	if c.IsClosing() {
		return true
	}
	if err == nil {
		return false
	}
	var le *goldap.Error
	return !errors.As(err, &le) || le.ResultCode >= goldap.ErrorNetwork
}

// close closes the idle connections; those in use close when returned.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}
