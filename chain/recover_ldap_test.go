package chain_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/slapdtest"
	"github.com/gatehouse-idp/gatehouse/users"
)

// A person whose password is the directory's cannot set one here by
// "Forgot password?": the page says where to change it.
func TestPasswordResetOfADirectoryAccount(t *testing.T) {
	srv := slapdtest.Start(t)
	srv.AddUser(t, "bob", "bob's directory password", "bob@acme.test", "Bob")
	src := srv.Source(t)
	var dir *users.Directory
	c := recoverEnv(t, `{}`, `{}`, func(o *chain.Options) {
		dir = users.NewWith(o.Store, users.Options{Sources: []users.Source{src}})
		o.Users = dir
	})
	b := c.client()
	c.askFor(b, "Forgot password?", "bob")
	m, link := c.lastMail()
	if m.To != "bob@acme.test" {
		t.Fatalf("mailed %q", m.To)
	}
	// Opening the link proves the mailbox, but the address stays the
	// directory's to vouch for (email_verified is not set here).
	st, page := c.openLink(b, link)
	if st != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("opening the link: %d\n%s", st, page)
	}
	st, body := post(t, b, c.srv.URL+"/login", form(page, "password", "a brand new secret 42", "confirm", "a brand new secret 42"))
	if st == http.StatusOK && strings.Contains(body, "DONE") || !strings.Contains(body, "kept in your organisation&#39;s directory") {
		t.Fatalf("reset of a directory account: %d\n%s", st, body)
	}
	u, err := dir.Lookup(t.Context(), "bob")
	if err != nil || u.PasswordHash != "" || u.Federation == nil || u.EmailVerified {
		t.Fatalf("bob after the reset: %v %+v", err, u)
	}
	// The directory's password still signs in.
	if _, err := dir.Authenticate(t.Context(), "bob", "bob's directory password"); err != nil {
		t.Fatal(err)
	}
}
