package chain_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/regulate"
)

func regulatedEngine(t *testing.T, d *deps) *chain.Engine {
	t.Helper()
	lim, err := regulate.New(d.st, nil, d.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	e, err := chain.New(chain.DefaultConfig(), chain.Options{Store: d.st, Sessions: d.sessions, Users: d.users, Logout: d.logout,
		Regulate: lim, LoginPath: "/login", StaticPath: "/static"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Guessing one account's password is slowed, then banned, across new
// attempts; during the ban the right password is refused too, with the
// same answer as for an account that does not exist.
func TestGuessingIsSlowedThenBanned(t *testing.T) {
	d := newDeps(t)
	e := regulatedEngine(t, d)
	srv, c := loginServer(t, e)
	guess := func(user, pw string) (int, string) {
		t.Helper()
		_, page := get(t, c, srv.URL+"/start") // a new attempt each time
		return post(t, c, srv.URL+"/login", form(page, "username", user, "password", pw))
	}
	checked := 0
	var banPage string
	for i := 0; i < 30 && banPage == ""; i++ {
		st, page := guess("alice", "wrong")
		switch st {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			if strings.Contains(page, " seconds") {
				d.clk.add(30 * time.Second) // a delay: wait it out
				continue
			}
			banPage = page
		default:
			t.Fatalf("guess %d: %d", i, st)
		}
	}
	if checked != 5 || banPage == "" {
		t.Fatalf("%d wrong passwords were checked before the ban (want 5); banned: %v", checked, banPage != "")
	}
	st, page := guess("alice", "pw")
	if st != http.StatusTooManyRequests || page != banPage {
		t.Fatalf("right password during the ban: %d", st)
	}
	if st, body := guess("alice", "pw"); st == 200 && body == "DONE" {
		t.Fatal("signed in during the ban")
	}
	// An unknown account banned the same way answers the same page.
	for i := 0; i < 30; i++ {
		st, page := guess("mallory", "wrong")
		if st == http.StatusTooManyRequests && !strings.Contains(page, " seconds") {
			if strings.ReplaceAll(page, "5 minutes", "X") != strings.ReplaceAll(banPage, "5 minutes", "X") {
				t.Fatalf("the ban page of an unknown account differs:\n%s\n---\n%s", page, banPage)
			}
			break
		}
		d.clk.add(30 * time.Second)
	}
	// After the ban, the right password works.
	d.clk.add(6 * time.Minute)
	if st, body := guess("alice", "pw"); st != 200 || body != "DONE" {
		t.Fatalf("after the ban: %d %s", st, body)
	}
}
