package chain_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/users"
)

// keysEnv: a password, and keys (test-keys, an AccountModule) as a
// second way in.
func keysEnv(t *testing.T, log *auditLog) *cenv {
	var opt func(*chain.Options)
	if log != nil {
		opt = withAudit(log)
	}
	return newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Keys", Kind: "test-keys", Levels: []string{"1", "2"}},
	}, opt)
}

// passwordIn signs login in in b with the password module (chosen
// beside the others).
func (c *cenv) passwordIn(b *http.Client, login, pw string) (int, string) {
	c.t.Helper()
	_, page := get(c.t, b, c.srv.URL+"/start")
	_, page = c.choose(b, page, "Password")
	return post(c.t, b, c.srv.URL+"/login", form(page, "username", login, "password", pw))
}

// addKey adds key k to the account signed in in b, through /add.
func (c *cenv) addKey(b *http.Client, k string) (int, string) {
	c.t.Helper()
	st, page := get(c.t, b, c.srv.URL+"/add?module=Keys")
	if st != http.StatusOK || !strings.Contains(page, "Add a key") {
		return st, page
	}
	return post(c.t, b, c.srv.URL+"/login", form(page, "key", k))
}

// A signed-in user adds a key through an account attempt: the module is
// asked whatever the session passed, what it stores is the user's, the
// session gains nothing, and the key then signs the user in. The
// account page lists it; removing it works, except the last way in.
func TestAccountAttemptAddsToTheSignedInUser(t *testing.T) {
	log := &auditLog{}
	c := keysEnv(t, log)
	b := c.client()
	if _, body := c.passwordIn(b, "alice", "pw"); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("sign-in: %s", body)
	}
	st, page := get(t, b, c.srv.URL+"/add?module=Keys")
	if st != http.StatusOK || !strings.Contains(page, "Add a key") || strings.Contains(page, "Trust this browser") ||
		strings.Contains(page, `name="password"`) {
		t.Fatalf("add page: %d\n%s", st, page)
	}
	// Another module cannot be posted in an account attempt.
	if st, _ := post(t, b, c.srv.URL+"/login", form(page, "module", "Password", "username", "alice", "password", "pw")); st != http.StatusBadRequest {
		t.Fatalf("password posted in an account attempt: %d", st)
	}
	if _, body := post(t, b, c.srv.URL+"/login", form(page, "key", "k1")); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("after adding (the session must be unchanged): %s", body)
	}
	if evs := log.events("credential_added"); len(evs) != 1 || evs[0]["module"] != "Keys" || evs[0]["user"] != "alice" {
		t.Fatalf("audit %v", evs)
	}
	// The attempt is spent.
	if st, _ := post(t, b, c.srv.URL+"/login", form(page, "key", "k9")); st != http.StatusBadRequest {
		t.Fatalf("account attempt used twice: %d", st)
	}
	// The key signs alice in on its own.
	k := c.client()
	_, start := get(t, k, c.srv.URL+"/start")
	_, start = c.choose(k, start, "Keys")
	if _, body := post(t, k, c.srv.URL+"/login", form(start, "key", "k1")); body != c.done(c.alice.Subject, "hwk") {
		t.Fatalf("signing in with the key: %s", body)
	}
	ctx := context.Background()
	u, _ := c.users.Get(ctx, c.alice.Subject)
	secs, err := c.e.AccountSections(ctx, u)
	if err != nil || len(secs) != 1 || secs[0].Module != "Keys" || len(secs[0].Items) != 1 || secs[0].Items[0].ID != "k1" || secs[0].Add != "Add a key" {
		t.Fatalf("sections %+v %v", secs, err)
	}
	// Without a password, the last key stays.
	if _, err := c.users.Update(ctx, u.Subject, func(u *users.User) error { u.PasswordHash = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	u, _ = c.users.Get(ctx, c.alice.Subject)
	var refused chain.RemoveRefused
	if err := c.e.RemoveAccountItem(ctx, u, "Keys", "k1"); !errors.As(err, &refused) {
		t.Fatalf("removing the last way in: %v", err)
	}
	c.addKey(b, "k2")
	if err := c.e.RemoveAccountItem(ctx, u, "Keys", "k1"); err != nil {
		t.Fatal(err)
	}
	if evs := log.events("credential_removed"); len(evs) != 1 || evs[0]["target"] != "k1" {
		t.Fatalf("audit %v", evs)
	}
	if err := c.e.RemoveAccountItem(ctx, u, "Password", "x"); !errors.Is(err, chain.ErrNoAccountModule) {
		t.Fatalf("a module without an account part: %v", err)
	}
}

// Account attempts cannot be walked around: no session, no attempt; a
// key that is someone else's is not added (409); the attempt's token in
// another browser is gone; the session ending half-way stops it.
func TestAccountAttemptRefusals(t *testing.T) {
	c := keysEnv(t, nil)
	ctx := context.Background()
	if st, _ := get(t, c.client(), c.srv.URL+"/add?module=Keys"); st != http.StatusUnauthorized {
		t.Fatalf("without a session: %d", st)
	}
	b := c.client()
	c.passwordIn(b, "alice", "pw")
	if st, _ := get(t, b, c.srv.URL+"/add?module=Password"); st != http.StatusNotFound {
		t.Fatalf("a module without an account part: %d", st)
	}
	c.addKey(b, "alice-key")

	bob, err := c.users.Create(ctx, users.User{Username: "bob", Email: "bob@example.com"}, "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	bb := c.client()
	c.passwordIn(bb, "bob", "bob-pw")
	if st, body := c.addKey(bb, "alice-key"); st != http.StatusConflict || !strings.Contains(body, "belongs to another account") {
		t.Fatalf("another's key: %d\n%s", st, body)
	}
	if _, body := get(t, bb, c.srv.URL+"/done"); body != c.done(bob.Subject, "pwd") {
		t.Fatalf("bob's session afterwards: %s", body)
	}

	// The add page's token in another browser (signed in as bob) is gone.
	_, page := get(t, b, c.srv.URL+"/add?module=Keys")
	if st, _ := post(t, bb, c.srv.URL+"/login", form(page, "key", "stolen")); st != http.StatusBadRequest {
		t.Fatalf("another browser: %d", st)
	}
	// Alice's session ends while her add page is open.
	list, _ := c.sessions.ListFor(ctx, c.alice.Subject)
	for _, s := range list {
		if err := c.logout.End(ctx, s.ID, logout.ByUser); err != nil {
			t.Fatal(err)
		}
	}
	if st, body := post(t, b, c.srv.URL+"/login", form(page, "key", "late")); st != http.StatusConflict {
		t.Fatalf("after the session ended: %d\n%s", st, body)
	}
	u, _ := c.users.Get(ctx, c.alice.Subject)
	secs, _ := c.e.AccountSections(ctx, u)
	if got := fmt.Sprint(secs[0].Items); strings.Contains(got, "late") {
		t.Fatalf("a key was added after the session ended: %s", got)
	}
}

// In an account attempt, a remote identity goes to the Linker with the
// attempt (Account true, Subject the user); a Linker that answers
// another user is refused.
func TestAccountAttemptLinks(t *testing.T) {
	idp := chaintest.NewIdP()
	defer idp.Close()
	linker := &accountLinker{links: map[string]string{}}
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Remote", Kind: "test-remote", Levels: []string{"1"}, Settings: settings(fmt.Sprintf(`{"url": %q, "account": true}`, idp.URL))},
	}, func(o *chain.Options) { o.Linker = linker })
	b := c.client()
	c.passwordIn(b, "alice", "pw")
	idp.SignIn(chaintest.Claims{Sub: "r-1", Email: "someone@example.com"})
	st, page := get(t, b, c.srv.URL+"/add?module=Remote")
	if st != http.StatusOK {
		t.Fatalf("add page: %d\n%s", st, page)
	}
	if _, body := post(t, b, c.srv.URL+"/login", form(page)); body != c.done(c.alice.Subject, "pwd") {
		t.Fatalf("after linking: %s", body)
	}
	if linker.links["r-1"] != c.alice.Subject {
		t.Fatalf("links %v", linker.links)
	}
	// r-1 now signs alice in.
	k := c.client()
	_, start := get(t, k, c.srv.URL+"/start")
	_, start = c.choose(k, start, "Remote")
	if _, body := post(t, k, c.srv.URL+"/login", form(start)); !strings.HasPrefix(body, c.done(c.alice.Subject)) {
		t.Fatalf("signing in with the linked identity: %s", body)
	}
	// The session ends while the browser is at the remote provider: the
	// callback links nothing.
	idp.SignIn(chaintest.Claims{Sub: "r-2", Email: "someone@example.com"})
	_, page = get(t, b, c.srv.URL+"/add?module=Remote")
	var atIdP string
	b.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), idp.URL) {
			atIdP = r.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	post(t, b, c.srv.URL+"/login", form(page))
	b.CheckRedirect = nil
	list, _ := c.sessions.ListFor(context.Background(), c.alice.Subject)
	for _, s := range list {
		if err := c.logout.End(context.Background(), s.ID, logout.ByUser); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := get(t, b, atIdP); atIdP == "" || st != http.StatusConflict {
		t.Fatalf("callback after the session ended (%s): %d", atIdP, st)
	}
	if _, ok := linker.links["r-2"]; ok {
		t.Fatalf("linked after the session ended: %v", linker.links)
	}
	// Someone else signed in at home links r-1: refused.
	idp.SignIn(chaintest.Claims{Sub: "r-1", Email: "someone@example.com"})
	bob, _ := c.users.Create(context.Background(), users.User{Username: "bob"}, "bob-pw")
	bb := c.client()
	c.passwordIn(bb, "bob", "bob-pw")
	_, page = get(t, bb, c.srv.URL+"/add?module=Remote")
	if st, _ := post(t, bb, c.srv.URL+"/login", form(page)); st != http.StatusConflict {
		t.Fatalf("linking another's identity: %d", st)
	}
	if linker.links["r-1"] != c.alice.Subject || bob.Subject == "" {
		t.Fatalf("links %v", linker.links)
	}
}

// accountLinker links identities by their subject: in an account
// attempt to its user unless the identity is linked already.
type accountLinker struct{ links map[string]string }

func (l *accountLinker) Link(_ context.Context, a *chain.Attempt, c chain.Claims) (string, error) {
	if sub, ok := l.links[c.Subject]; ok {
		return sub, nil
	}
	if !a.Account() {
		return "", chain.ErrNotLinked
	}
	l.links[c.Subject] = a.Subject
	return a.Subject, nil
}

func (l *accountLinker) Attach(context.Context, string, chain.Claims) error {
	return errors.New("not used")
}
