// Package slapdtest starts a real OpenLDAP server (Debian's slapd) for
// tests: a throw-away slapd.conf and mdb database in the test's temp
// directory, listening on 127.0.0.1 with free ports for ldap:// (with
// StartTLS) and ldaps://, under a CA made for the test, with the
// memberOf overlay. It is stopped by its PID when the test ends.
//
// .ci/run installs slapd; a machine without it fails the test with a
// message saying what to install.
package slapdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/gatehouse-idp/gatehouse/internal/freeport"
	"github.com/gatehouse-idp/gatehouse/users/ldap"
)

// Base is the suffix of the test directory.
const Base = "dc=gatehouse,dc=test"

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:port (StartTLS offered), LDAPS ldaps://.
	URL, LDAPS string
	// CAFile is the PEM CA that signed the server's certificate.
	CAFile string
	// RootDN and RootPW administer the directory; People and Groups are
	// the organisational units users and groups are added under.
	RootDN, RootPW, People, Groups string

	args    []string // the command line
	logFile string
	cmd     *exec.Cmd
}

// Start starts slapd for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("slapd")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/slapd"); e == nil {
			bin = "/usr/sbin/slapd"
		} else {
			t.Fatalf("slapd is needed for the LDAP tests: apt-get install slapd ldap-utils (.ci/run does): %v", err)
		}
	}
	dir := t.TempDir()
	s := &Server{RootDN: "cn=admin," + Base, RootPW: "root-secret", People: "ou=people," + Base, Groups: "ou=groups," + Base}
	s.CAFile = writeCerts(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/server.pem
TLSCertificateKeyFile %[1]s/server.key
database mdb
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
maxsize 67108864
overlay memberof
`, dir, Base, s.RootDN, s.RootPW)
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p1, p2 := freePort(t), freePort(t)
	s.URL, s.LDAPS = "ldap://127.0.0.1:"+p1, "ldaps://127.0.0.1:"+p2
	s.args = []string{bin, "-f", confFile, "-h", s.URL + "/ " + s.LDAPS + "/", "-d", "0"}
	s.logFile = filepath.Join(dir, "slapd.log")
	s.run(t)
	t.Cleanup(s.Stop)
	s.Add(t, Base, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"gatehouse"}, "o": {"Gatehouse test"}})
	s.Add(t, s.People, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	s.Add(t, s.Groups, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}})
	return s
}

// run starts slapd and waits until it listens.
func (s *Server) run(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// -d 0: stay in the foreground (so the PID is ours), log nothing.
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting slapd: %v", err)
	}
	addr := strings.TrimPrefix(s.URL, "ldap://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.logFile)
			s.Stop()
			t.Fatalf("slapd did not start listening on %s: %v\n%s", s.URL, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops slapd and starts it again on the same ports and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.run(t)
}

// Stop ends slapd (by its PID) and waits for it; it may be called again.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// Source is a user source over People (inetOrgPerson by uid or mail),
// searching as the root, closed when t ends.
func (s *Server) Source(t testing.TB) *ldap.Source {
	t.Helper()
	src, err := ldap.New(ldap.Settings{URL: s.URL, BaseDN: s.People, BindDN: s.RootDN, BindPassword: s.RootPW,
		UserFilter: "(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// Admin returns a connection bound as the directory's root.
func (s *Server) Admin(t testing.TB) *goldap.Conn {
	t.Helper()
	c, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("dialing slapd: %v", err)
	}
	if err := c.Bind(s.RootDN, s.RootPW); err != nil {
		c.Close()
		t.Fatalf("binding to slapd as root: %v", err)
	}
	return c
}

// Add adds the entry dn with attrs.
func (s *Server) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	req := goldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		req.Attribute(k, v)
	}
	if err := c.Add(req); err != nil {
		t.Fatalf("adding %s: %v", dn, err)
	}
}

// AddUser adds an inetOrgPerson uid=<uid> under People and returns its DN.
func (s *Server) AddUser(t testing.TB, uid, password, mail, cn string) string {
	t.Helper()
	dn := "uid=" + goldap.EscapeDN(uid) + "," + s.People
	attrs := map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {uid}, "cn": {cn}, "sn": {cn}, "userPassword": {password}}
	if mail != "" {
		attrs["mail"] = []string{mail}
	}
	s.Add(t, dn, attrs)
	return dn
}

// AddGroup adds a groupOfNames cn=<cn> under Groups with members (DNs).
func (s *Server) AddGroup(t testing.TB, cn string, members ...string) string {
	t.Helper()
	dn := "cn=" + goldap.EscapeDN(cn) + "," + s.Groups
	s.Add(t, dn, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {cn}, "member": members})
	return dn
}

// Replace sets attr of dn to values (none: deletes it).
func (s *Server) Replace(t testing.TB, dn, attr string, values ...string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	req := goldap.NewModifyRequest(dn, nil)
	req.Replace(attr, values)
	if err := c.Modify(req); err != nil {
		t.Fatalf("modifying %s: %v", dn, err)
	}
}

// Rename gives dn the first part rdn (uid=robert), dropping the old
// value, and returns the new DN.
func (s *Server) Rename(t testing.TB, dn, rdn string) string {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	if err := c.ModifyDN(goldap.NewModifyDNRequest(dn, rdn, true, "")); err != nil {
		t.Fatalf("renaming %s: %v", dn, err)
	}
	d, err := goldap.ParseDN(dn)
	if err != nil {
		t.Fatal(err)
	}
	d.RDNs = d.RDNs[1:]
	return rdn + "," + d.String()
}

// Delete removes the entry dn.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	if err := c.Del(goldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("deleting %s: %v", dn, err)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	return strconv.Itoa(freeport.Must(t))
}

// writeCerts makes a CA and a server certificate for 127.0.0.1 and
// localhost in dir (ca.pem, server.pem, server.key) and returns the CA's
// file.
func writeCerts(t testing.TB, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Gatehouse test LDAP CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", leafDER)
	write("server.key", "PRIVATE KEY", keyDER)
	return filepath.Join(dir, "ca.pem")
}
