package ldap_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/users"
	"github.com/gatehouse-idp/gatehouse/users/ldap"
)

func TestStartTLSAndLDAPS(t *testing.T) {
	w := newWorld(t, nil)
	for name, mod := range map[string]func(*ldap.Settings){
		"starttls": func(s *ldap.Settings) { s.StartTLS, s.CAFile = true, w.srv.CAFile },
		"ldaps":    func(s *ldap.Settings) { s.URL, s.CAFile = w.srv.LDAPS, w.srv.CAFile },
	} {
		t.Run(name, func(t *testing.T) {
			s := baseSettings(w.srv)
			mod(&s)
			e, err := w.newSource(t, s, 0).Authenticate(ctx(t), "alice", alicePW)
			if err != nil || e.Username != "alice" {
				t.Fatalf("%v %+v", err, e)
			}
			// Without the test CA the server's certificate is refused:
			// TLS really is spoken, and checked.
			s.CAFile = ""
			_, err = w.newSource(t, s, 0).Authenticate(ctx(t), "alice", alicePW)
			if err == nil || errors.Is(err, users.ErrInvalidCredentials) || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("without the CA: %v, want a certificate error", err)
			}
		})
	}
}

// blackHole accepts connections and never answers; it reports how many
// it holds now.
func blackHole(t *testing.T) (addr string, open func() int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer n.Add(-1)
				defer c.Close()
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), n.Load
}

// A restarted server drops the pooled connections: the next sign-in
// works on a new one.
func TestServerRestart(t *testing.T) {
	w := newWorld(t, func(s *ldap.Settings) { s.Pool = 1 })
	if _, err := w.dir.Authenticate(ctx(t), "alice", alicePW); err != nil {
		t.Fatal(err)
	}
	w.srv.Restart(t)
	if _, err := w.dir.Authenticate(ctx(t), "alice", alicePW); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

// freezer forwards connections to target until freeze: from then on
// the connections it has stop forwarding without closing (a firewall
// forgetting idle connections); new ones work.
type freezer struct {
	mu     sync.Mutex
	frozen []chan struct{}
}

func newFreezer(t *testing.T, target string) (*freezer, string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &freezer{}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			stop := make(chan struct{})
			f.mu.Lock()
			f.frozen = append(f.frozen, stop)
			f.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 4096)
				for {
					n, err := src.Read(buf)
					if err != nil {
						dst.Close()
						return
					}
					select {
					case <-stop:
						continue // swallowed
					default:
					}
					dst.Write(buf[:n])
				}
			}
			go pipe(out, in)
			go pipe(in, out)
			t.Cleanup(func() { in.Close(); out.Close() })
		}
	}()
	return f, l.Addr().String()
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.frozen {
		close(c)
	}
	f.frozen = nil
}

// A pooled connection that went silent is replaced once: the sign-in
// works on a new one, after one timeout.
func TestSilentPooledConnectionReplaced(t *testing.T) {
	w := newWorld(t, nil)
	f, addr := newFreezer(t, strings.TrimPrefix(w.srv.URL, "ldap://"))
	s := baseSettings(w.srv)
	s.URL, s.Pool = "ldap://"+addr, 1
	src := w.newSource(t, s, 500*time.Millisecond)
	if _, err := src.Authenticate(ctx(t), "alice", alicePW); err != nil {
		t.Fatal(err)
	}
	f.freeze()
	start := time.Now()
	if e, err := src.Authenticate(ctx(t), "alice", alicePW); err != nil || e.Username != "alice" {
		t.Fatalf("after the pooled connection went silent: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestServerDownFailsFast(t *testing.T) {
	w := newWorld(t, nil)
	if _, err := w.dir.Authenticate(ctx(t), "alice", alicePW); err != nil {
		t.Fatal(err)
	}
	if _, err := w.dir.Create(ctx(t), users.User{Username: "zed"}, "zed's local password 9"); err != nil {
		t.Fatal(err)
	}
	w.srv.Stop()
	// Local accounts still sign in; new ones cannot be made.
	if _, err := w.dir.Authenticate(ctx(t), "zed", "zed's local password 9"); err != nil {
		t.Fatalf("local account with the directory down: %v", err)
	}
	if _, err := w.dir.Create(ctx(t), users.User{Username: "yan"}, "yan's local password 9"); err == nil {
		t.Fatal("a local account was made while the directory could not say the name is free")
	}
	start := time.Now()
	_, err := w.dir.Authenticate(ctx(t), "alice", alicePW)
	if err == nil || errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("server down: %v, want an error that is not a wrong password", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("server down took %v", d)
	}
	// A server that accepts and never answers: bounded by the timeout.
	addr, _ := blackHole(t)
	s := baseSettings(w.srv)
	s.URL = "ldap://" + addr
	src := w.newSource(t, s, 300*time.Millisecond)
	start = time.Now()
	if _, err := src.Authenticate(ctx(t), "alice", alicePW); err == nil || errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("silent server: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("silent server took %v with a 300ms timeout", d)
	}
}

func TestPoolBounded(t *testing.T) {
	w := newWorld(t, nil)
	addr, open := blackHole(t)
	s := baseSettings(w.srv)
	s.URL, s.Pool = "ldap://"+addr, 2
	src := w.newSource(t, s, 400*time.Millisecond)
	var wg sync.WaitGroup
	var busy, slow atomic.Int64
	for range 10 {
		wg.Go(func() {
			start := time.Now()
			_, err := src.Authenticate(ctx(t), "alice", alicePW)
			if errors.Is(err, users.ErrBusy) {
				busy.Add(1)
			}
			if time.Since(start) > 2*time.Second {
				slow.Add(1)
			}
		})
	}
	// Counted in the middle of each round of hanging requests (a closed
	// connection reaches the server a moment after its slot is free).
	for range 2 {
		time.Sleep(200 * time.Millisecond)
		if n := open(); n > 2 {
			t.Fatalf("%d connections at once with pool 2", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	if busy.Load() == 0 || slow.Load() != 0 {
		t.Fatalf("busy %d, slow %d: want some refused as busy and none waiting past twice the timeout", busy.Load(), slow.Load())
	}
}

func TestSettingsValidate(t *testing.T) {
	good := ldap.Settings{URL: "ldaps://dc.acme.example", BaseDN: "dc=acme,dc=example"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mod := range map[string]func(*ldap.Settings){
		"url is required":          func(s *ldap.Settings) { s.URL = "" },
		"sends passwords in clear": func(s *ldap.Settings) { s.URL = "ldap://dc.acme.example" },
		"ldaps:// is TLS already":  func(s *ldap.Settings) { s.StartTLS = true },
		"scheme must be":           func(s *ldap.Settings) { s.URL = "http://dc.acme.example" },
		"nothing more":             func(s *ldap.Settings) { s.URL = "ldaps://dc.acme.example/dc=x?uid" },
		"base_dn is required":      func(s *ldap.Settings) { s.BaseDN = "" },
		"base_dn \"nodn\"":         func(s *ldap.Settings) { s.BaseDN = "nodn" },
		"go together":              func(s *ldap.Settings) { s.BindDN = "cn=x,dc=acme" },
		"does not use {login}":     func(s *ldap.Settings) { s.UserFilter = "(uid=admin)" },
		"unknown placeholder {dn}": func(s *ldap.Settings) { s.UserFilter = "(&(uid={login})(x={dn}))" },
		"not a valid LDAP filter":  func(s *ldap.Settings) { s.UserFilter = "(uid={login}" },
		"a { without }":            func(s *ldap.Settings) { s.UserFilter = "(uid={login)" },
		"only stand in a value":    func(s *ldap.Settings) { s.UserFilter = "(&({login}=x)(uid=y))" },
		"not an attribute name":    func(s *ldap.Settings) { s.Attributes.Groups = "member Of" },
		"group_search base_dn":     func(s *ldap.Settings) { s.GroupSearch = &ldap.GroupSearch{} },
		"group_search filter":      func(s *ldap.Settings) { s.GroupSearch = &ldap.GroupSearch{BaseDN: "ou=g", Filter: "(member=x)"} },
		"pool must be":             func(s *ldap.Settings) { s.Pool = 65 },
	} {
		s := good
		mod(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
	// Plain ldap:// only on loopback.
	for _, u := range []string{"ldap://127.0.0.1:389", "ldap://localhost", "ldap://[::1]:1389"} {
		s := good
		s.URL = u
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}
