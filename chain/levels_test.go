package chain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// enrolledCode is a second factor only some users have: those in the
// group "enrolled", or everyone when mandatory (like TOTP).
type enrolledCode struct {
	fixedCode
	mandatory bool
}

func (m enrolledCode) Applicable(_ context.Context, u users.User) (bool, error) {
	return m.mandatory || slices.Contains(u.Groups, "enrolled"), nil
}

func init() {
	chain.Register("testenrolled", func(_ chain.Deps, s codeSettings) (chain.Module, error) {
		return enrolledCode{fixedCode: fixedCode{code: s.Code}, mandatory: s.Mandatory}, nil
	})
}

func hasSession(d *deps, c *http.Client, base string) bool {
	u, _ := url.Parse(base)
	r, _ := http.NewRequest(http.MethodGet, base, nil)
	for _, ck := range c.Jar.Cookies(u) {
		r.AddCookie(ck)
	}
	_, err := d.sessions.Load(r)
	return err == nil
}

// sessionOf returns what the browser's SSO session passed.
func sessionOf(t *testing.T, d *deps, c *http.Client, base string) []string {
	t.Helper()
	u, _ := url.Parse(base)
	r, _ := http.NewRequest(http.MethodGet, base, nil)
	for _, ck := range c.Jar.Cookies(u) {
		r.AddCookie(ck)
	}
	s, err := d.sessions.Load(r)
	if err != nil {
		t.Fatalf("no session: %v", err)
	}
	var mods []string
	for _, p := range s.Passed {
		mods = append(mods, p.Module)
	}
	slices.Sort(mods)
	return mods
}

// acr_values (and the claims parameter, which the provider turns into
// the same list) can only add to a login, never take a factor away.
func TestRequestedLevelsNeverSkipAnEnrolledFactor(t *testing.T) {
	for _, mandatory := range []bool{false, true} {
		d := newDeps(t)
		if _, err := d.users.Update(context.Background(), d.alice.Subject, func(u *users.User) error {
			u.Groups = []string{"enrolled"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.users.Create(context.Background(), users.User{Username: "bob"}, "bob-pw"); err != nil {
			t.Fatal(err)
		}
		e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
			mod("Password", "password", []string{"1"}),
			{Name: "Code", Kind: "testenrolled", Levels: []string{"2"}, After: []string{"Password"},
				Settings: json.RawMessage(fmt.Sprintf(`{"code": "123456", "mandatory": %v}`, mandatory))},
		}})
		for _, acr := range []string{"", "1", "9", "1 2", "1 9"} {
			for _, who := range []struct {
				user, pw string
				asked    bool
			}{{"alice", "pw", true}, {"bob", "bob-pw", mandatory}} {
				srv, c := loginServer(t, e)
				_, page := get(t, c, srv.URL+"/start?acr="+url.QueryEscape(acr))
				st, page := post(t, c, srv.URL+"/login", form(page, "username", who.user, "password", who.pw))
				asked := st == 200 && strings.Contains(page, `value="Code"`)
				if asked != who.asked {
					t.Errorf("mandatory=%v acr=%q %s: code asked=%v, want %v (%d)", mandatory, acr, who.user, asked, who.asked, st)
					continue
				}
				if !asked {
					if page != "DONE" {
						t.Errorf("mandatory=%v acr=%q %s: %d %s", mandatory, acr, who.user, st, page)
					}
					continue
				}
				// No session exists before the code is given.
				if hasSession(d, c, srv.URL) {
					t.Errorf("mandatory=%v acr=%q %s: signed in without the code", mandatory, acr, who.user)
				}
				if st, body := post(t, c, srv.URL+"/login", form(page, "code", "123456")); st != 200 || body != "DONE" {
					t.Errorf("mandatory=%v acr=%q %s: after code %d %s", mandatory, acr, who.user, st, body)
				}
			}
		}
	}
}

// A new authentication (prompt=login, max_age=0) replaces what the
// session had passed: tokens describe only what was passed now.
func TestReauthenticationReplacesPassedModules(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Second", Kind: "testcode", Levels: []string{"2"}, After: []string{"Password"}, ShowOnlyWhenNeeded: true, Settings: settingsFor("testcode")},
	}})
	srv, c := loginServer(t, e)
	_, page := get(t, c, srv.URL+"/start?acr=2")
	_, page = post(t, c, srv.URL+"/login", form(page, "username", "alice", "password", "pw"))
	if st, body := post(t, c, srv.URL+"/login", form(page, "code", "123456")); st != 200 || body != "DONE" {
		t.Fatalf("level 2: %d %s", st, body)
	}
	if mods := sessionOf(t, d, c, srv.URL); !slices.Equal(mods, []string{"Password", "Second"}) {
		t.Fatalf("after level 2: %v", mods)
	}
	// Step-up keeps what was passed: asking level 2 again asks nothing.
	if st, body := get(t, c, srv.URL+"/start?acr=2"); st != 200 || body != "DONE" {
		t.Fatalf("same level again: %d %s", st, body)
	}
	// prompt=login with level 1: the password only, and the session then
	// holds only that.
	_, page = get(t, c, srv.URL+"/start?acr=1&force")
	if st, body := post(t, c, srv.URL+"/login", form(page, "username", "alice", "password", "pw")); st != 200 || body != "DONE" {
		t.Fatalf("re-authentication: %d %s", st, body)
	}
	if mods := sessionOf(t, d, c, srv.URL); !slices.Equal(mods, []string{"Password"}) {
		t.Fatalf("after re-authentication the session still claims %v", mods)
	}
	// So level 2 has to be passed again.
	if _, page := get(t, c, srv.URL+"/start?acr=2"); !strings.Contains(page, `value="Second"`) {
		t.Fatalf("level 2 after re-authentication not asked:\n%s", page)
	}
}
