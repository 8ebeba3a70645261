package registration_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/mail"
	"github.com/gatehouse-idp/gatehouse/users"
)

// Sign up, then activate by the mailed link, then signed in: the account
// is inactive (its address pending) until the link is used, and the
// sign-in ends with both passes.
func TestSignUpActivateSignedIn(t *testing.T) {
	v := newEnv(t, signupChain(`{"welcome": true}`))
	b := v.browser()
	st, page := v.signUp(b, "newbie", "Newbie@Example.org")
	if st != http.StatusOK || !strings.Contains(page, "Activate your account") || !strings.Contains(page, "N•••@Example.org") ||
		!strings.Contains(page, `name="step" value="send"`) || strings.Contains(page, `name="login"`) {
		t.Fatalf("after signing up: %d\n%s", st, page)
	}
	u := v.user("newbie")
	if !u.Inactive || u.EmailVerified || u.Name != "New Person" {
		t.Fatalf("new account %+v", u)
	}
	if ev := v.event("account_created"); ev == nil || ev["user"] != "newbie" || ev["reason"] != "inactive until activated" || ev["client"] != "wiki" {
		t.Fatalf("audit %v", ev)
	}
	// No session yet: the sign-in is not done.
	if st, _ := v.get(b, "/done"); st != http.StatusUnauthorized {
		t.Fatalf("a session before activation: %d", st)
	}
	st, page = v.post(b, "/login", form(page))
	if st != http.StatusOK || !strings.Contains(page, "Check your mail") {
		t.Fatalf("after sending: %d\n%s", st, page)
	}
	m := v.lastMail()
	link, _ := m.Data["link"].(string)
	if m.To != "Newbie@Example.org" || m.Template != mail.Activation || m.Data["username"] != "newbie" ||
		m.Data["expires"] != 24*time.Hour || m.Data["client_name"] != "Wiki" || !strings.HasPrefix(link, v.srv.URL+"/login/m/Activate/mail?t=") {
		t.Fatalf("mail %+v", m)
	}
	if st, body := v.useLink(b, link); body != v.done(u.Subject, "pwd", "otp", "mfa") {
		t.Fatalf("link: %d %s", st, body)
	}
	u = v.user("newbie@example.org")
	if u.Inactive || !u.EmailVerified {
		t.Fatalf("after the link %+v", u)
	}
	if ev := v.event("account_activated"); ev == nil || ev["user"] != "newbie" || ev["reason"] != "activation link" {
		t.Fatalf("audit %v", ev)
	}
	if m := v.lastMail(); m.Template != mail.RegistrationWelcome || m.To != "Newbie@Example.org" || m.Data["username"] != "newbie" {
		t.Fatalf("welcome %+v", m)
	}
	// Used once.
	if st, _ := v.useLink(b, link); st != http.StatusBadRequest {
		t.Fatalf("link twice: %d", st)
	}
	// Now active, a password sign-in needs no activation.
	if _, body := v.signIn(v.browser(), "newbie"); body != v.done(u.Subject, "pwd") {
		t.Fatalf("password afterwards: %s", body)
	}
}

// An inactive account that signs in with its password (by name or by its
// pending address) is asked to activate and gets no session before.
func TestInactiveAccountSignsInThroughActivation(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	v.signUp(v.browser(), "dora", "dora@example.org") // never activated in that browser
	for _, login := range []string{"dora", "dora@example.org"} {
		b := v.browser()
		st, page := v.signIn(b, login)
		if st != http.StatusOK || !strings.Contains(page, "Activate your account") {
			t.Fatalf("%s: %d\n%s", login, st, page)
		}
		// No other step can be posted instead, and no session is there.
		if st, _ := v.post(b, "/login", form(page, "module", "Sign in", "username", "alice", "password", strong)); st != http.StatusBadRequest {
			t.Fatalf("another module posted instead of activation: %d", st)
		}
		if st, _ := v.get(b, "/done"); st != http.StatusUnauthorized {
			t.Fatalf("session before activation: %d", st)
		}
		_, page = v.post(b, "/login", form(page))
		if st, body := v.useLink(b, v.lastMail().Data["link"].(string)); !strings.HasPrefix(body, "DONE ") || !strings.HasSuffix(body, " pwd otp mfa") {
			t.Fatalf("%s: link %d %s", login, st, body)
		}
		if u := v.user("dora"); u.Inactive {
			t.Fatal("still inactive")
		}
		// The second round: dora is active with her address verified;
		// undo both for the next login (a verified address activates).
		if _, err := v.users.Update(context.Background(), v.user("dora").Subject, func(u *users.User) error {
			u.Inactive, u.EmailVerified = true, false
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// A sign-up with an address another account has goes on exactly as any
// other (pages, and the time they take, roughly), creates an inactive
// account that can never claim the address, and mails the address's
// owner a note instead of a link.
func TestTakenAddressAnswersAsAnyOther(t *testing.T) {
	v := newEnv(t, signupChain(`{}`))
	type run struct {
		created, waiting string
		took             time.Duration
	}
	signUpAndSend := func(username, email string) run {
		b := v.browser()
		page := v.signupPage(b)
		start := time.Now()
		_, created := v.post(b, "/login", form(page, "username", username, "email", email, "name", "New Person", "password", strong, "password_confirm", strong))
		_, waiting := v.post(b, "/login", form(created))
		return run{created, waiting, time.Since(start)}
	}
	free := signUpAndSend("newbie", "newbie@example.com")
	link := v.lastMail()
	taken := signUpAndSend("mallory", "alice@example.com")
	sentAtTaken := len(v.outbox.Sent())
	norm := func(s string) string {
		s = tokenish.ReplaceAllString(s, "")
		return strings.NewReplacer("n•••@", "x•••@", "a•••@", "x•••@").Replace(s)
	}
	if norm(free.created) != norm(taken.created) || norm(free.waiting) != norm(taken.waiting) {
		t.Fatalf("a taken address is answered otherwise:\n%s\n---\n%s\n---\n%s\n---\n%s", free.created, taken.created, free.waiting, taken.waiting)
	}
	if !strings.Contains(taken.waiting, "Check your mail") {
		t.Fatalf("taken:\n%s", taken.waiting)
	}
	// The owner got a note naming their account, and no link.
	note := v.outbox.Sent()[sentAtTaken-1]
	if note.To == link.To || note.To != "alice@example.com" || note.Template != mail.AccountExists || note.Data["username"] != "alice" || note.Data["link"] != nil {
		t.Fatalf("note %+v", note)
	}
	if ev := v.event("activation_refused"); ev == nil || ev["user"] != "mallory" || !strings.Contains(ev["reason"].(string), "belongs to alice") {
		t.Fatalf("audit %v", ev)
	}
	// The address still finds alice; mallory stays inactive.
	if v.user("alice@example.com").Subject != v.alice.Subject || !v.user("mallory").Inactive {
		t.Fatal("the address moved")
	}
	// A second try within the hour tells the owner nothing more.
	sent := len(v.outbox.Sent())
	signUpAndSend("mallory2", "alice@example.com")
	if len(v.outbox.Sent()) != sent {
		t.Fatalf("owner told twice within the hour: %+v", v.lastMail())
	}
	// Roughly the same time: the median of a few rounds each, taken in
	// turns (one round is noise on a busy machine).
	var frees, takens []time.Duration
	for i := range 5 {
		v.clk.add(time.Hour) // past the limits of sign-ups and mails an hour
		owner := fmt.Sprintf("owner%d@example.com", i)
		if _, err := v.users.Create(context.Background(), users.User{Username: fmt.Sprintf("owner%d", i), Email: owner}, ""); err != nil {
			t.Fatal(err)
		}
		f, tk := signUpAndSend(fmt.Sprintf("free%d", i), fmt.Sprintf("free%d@example.com", i)), signUpAndSend(fmt.Sprintf("squat%d", i), owner)
		if norm(f.waiting) != norm(tk.waiting) || !strings.Contains(f.waiting, "Check your mail") {
			t.Fatalf("round %d:\n%s\n---\n%s", i, f.waiting, tk.waiting)
		}
		frees, takens = append(frees, f.took), append(takens, tk.took)
	}
	if r := float64(median(takens)) / float64(median(frees)); r < 0.5 || r > 2 {
		t.Errorf("free addresses took %v, taken ones %v", frees, takens)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// Without an activation module accounts are active at once, the person
// is signed in, and an address in use must be refused (nothing could
// prove whose it is). Every refusal says what to correct and creates
// nothing.
func TestSignUpWithoutActivation(t *testing.T) {
	mods := signupChain("")
	mods[1].Settings = []byte(`{"welcome": true}`)
	v := newEnv(t, mods)
	b := v.browser()
	st, body := v.signUp(b, "newbie", "newbie@example.com")
	u := v.user("newbie@example.com")
	if body != v.done(u.Subject, "pwd") || u.Inactive || u.EmailVerified {
		t.Fatalf("sign-up: %d %s %+v", st, body, u)
	}
	if ev := v.event("account_created"); ev == nil || ev["reason"] != "active" {
		t.Fatalf("audit %v", ev)
	}
	if m := v.lastMail(); m.Template != mail.RegistrationWelcome || m.To != "newbie@example.com" {
		t.Fatalf("welcome %+v", m)
	}
	before, _ := v.users.List(context.Background())
	for _, c := range []struct {
		name string
		kv   []string
		want string
	}{
		{"address in use", []string{"username", "other", "email", "ALICE@example.com"}, `An account with this email address exists already. Sign in with it, or use "Forgot password?".`},
		{"username taken", []string{"username", "Alice", "email", "x@example.com"}, "The username Alice is taken. Choose another."},
		{"username with @", []string{"username", "bob@example.com", "email", "x@example.com"}, "A username cannot contain @ (your email address goes in its own field)."},
		{"bad username", []string{"username", "bob smith", "email", "x@example.com"}, "A username has 1 to 64 letters, digits and . _ - + only."},
		{"bad address", []string{"username", "bob", "email", "Bob <bob@example.com>"}, "That is not an email address (like alice@example.com)."},
		{"address with CRLF", []string{"username", "bob", "email", "bob@example.com\r\nBcc: x@evil.example"}, "That is not an email address (like alice@example.com)."},
		{"bidi in the name", []string{"username", "bob", "email", "bob@example.com", "name", "Bob \u202egnp.exe"}, "The name is too long, or has characters that cannot be shown."},
		{"passwords differ", []string{"username", "bob", "email", "bob@example.com", "password_confirm", strong + "!"}, "The two passwords are not the same."},
		{"weak password", []string{"username", "bob", "email", "bob@example.com", "password", "password1234", "password_confirm", "password1234"}, ""},
		{"password is the name", []string{"username", "bobbyboy", "email", "bob@example.com", "password", "bobbyboy-" + strong, "password_confirm", "bobbyboy-" + strong}, "The password must not contain your username, name or email address."},
		{"nothing", []string{"username", "", "email", ""}, "Fill in a username, your email address and a password."},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := v.browser()
			page := v.signupPage(b)
			f := form(page, "name", "Bob", "password", strong, "password_confirm", strong)
			for i := 0; i < len(c.kv); i += 2 {
				f.Set(c.kv[i], c.kv[i+1])
			}
			st, page := v.post(b, "/login", f)
			got := alert(page)
			if st != http.StatusUnauthorized || got == "" || c.want != "" && got != c.want || !strings.Contains(page, `name="password_confirm"`) {
				t.Fatalf("%d %q, want %q", st, got, c.want)
			}
			if ev := v.event("login_failed"); ev == nil || ev["module"] != "Create an account" || ev["reason"] != got {
				t.Fatalf("audit %v", ev)
			}
		})
	}
	if after, _ := v.users.List(context.Background()); len(after) != len(before) {
		t.Fatalf("refused sign-ups created %d accounts", len(after)-len(before))
	}
}

// Sign-up limited to listed domains (subdomains with "*."), compared in
// their ASCII form.
func TestSignUpEmailDomains(t *testing.T) {
	mods := signupChain("")
	mods[1].Settings = []byte(`{"email_domains": ["acme.example", "*.bücher.example"]}`)
	v := newEnv(t, mods)
	page := v.signupPage(v.browser())
	if !strings.Contains(page, "Sign-up is open to addresses at acme.example, *.bücher.example.") {
		t.Fatalf("form:\n%s", page)
	}
	for i, c := range []struct {
		email string
		ok    bool
	}{
		{"a@acme.example", true}, {"b@ACME.Example", true}, {"c@shop.xn--bcher-kva.example", true}, {"d@a.b.bücher.example", true},
		{"e@bücher.example", false}, {"f@acme.example.evil", false}, {"g@evilacme.example", false}, {"h@sub.acme.example", false},
	} {
		st, body := v.signUp(v.browser(), "user"+string(rune('a'+i)), c.email)
		if c.ok != strings.HasPrefix(body, "DONE ") {
			t.Errorf("%s: %d %s", c.email, st, alert(body))
		}
		if !c.ok && alert(body) != "Sign-up is open to addresses at acme.example, *.bücher.example only." {
			t.Errorf("%s: %q", c.email, alert(body))
		}
	}
}

// Sign-ups are counted per client address and in all, per hour.
func TestSignUpLimits(t *testing.T) {
	mods := signupChain("")
	mods[1].Settings = []byte(`{"per_address": 3, "per_hour": 4}`)
	v := newEnv(t, mods)
	for i := range 3 {
		if _, body := v.signUp(v.browser(), "user"+string(rune('a'+i)), "u"+string(rune('a'+i))+"@example.com"); !strings.HasPrefix(body, "DONE ") {
			t.Fatalf("sign-up %d: %s", i, alert(body))
		}
	}
	_, page := v.signUp(v.browser(), "userx", "ux@example.com")
	if alert(page) != "Too many accounts were created from here in the last hour. Try again later." {
		t.Fatalf("fourth from one address: %q", alert(page))
	}
	if _, err := v.users.Lookup(context.Background(), "userx"); err == nil {
		t.Fatal("created past the limit")
	}
	// Next hour: the address may again, until the overall limit.
	v.clk.add(time.Hour)
	if _, body := v.signUp(v.browser(), "usery", "uy@example.com"); !strings.HasPrefix(body, "DONE ") {
		t.Fatalf("next hour: %s", alert(body))
	}

	// The overall limit holds whatever the address.
	mods[1].Settings = []byte(`{"per_address": 10, "per_hour": 2}`)
	w := newEnv(t, mods)
	for i := range 3 {
		_, body := w.signUp(w.browser(), "other"+string(rune('a'+i)), "o"+string(rune('a'+i))+"@example.com")
		if ok := strings.HasPrefix(body, "DONE "); ok != (i < 2) {
			t.Fatalf("sign-up %d of at most 2 an hour: %s", i, alert(body))
		}
	}
}
