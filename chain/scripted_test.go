package chain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/session"
)

func scriptEnv(t *testing.T, s string) *cenv {
	return newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "My key", Kind: "test-script", Levels: []string{"2"}, After: []string{"Password"}, Settings: settings(s)},
	}, nil)
}

// keyPage signs alice in with her password in a new browser and
// returns the scripted module's page and its response.
func (c *cenv) keyPage() (*http.Client, *http.Response, string) {
	c.t.Helper()
	b := c.client()
	_, page := get(c.t, b, c.srv.URL+"/start")
	resp, err := b.PostForm(c.srv.URL+"/login", form(page, "username", "alice", "password", "pw"))
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return b, resp, string(body)
}

type roundReply struct {
	Data struct {
		Challenge string `json:"challenge"`
	} `json:"data"`
	Continuation string `json:"continuation"`
	Next         string `json:"next"`
	Error        string `json:"error"`
}

// round posts one JSON request of the script.
func (c *cenv) round(b *http.Client, endpoint, ctype string, body any) (int, roundReply) {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := b.Post(c.srv.URL+"/login/m/My%20key/"+endpoint, ctype, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r roundReply
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

// A scripted module's page loads exactly its script, may fetch exactly
// its endpoints, and passes through a begin/finish round trip that is
// CSRF-protected, bound to the attempt and single use.
func TestScriptedModule(t *testing.T) {
	c := scriptEnv(t, `{}`)
	b, resp, page := c.keyPage()
	base := c.srv.URL + "/login/m/My%20key"
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "; script-src "+base+"/script.js;") || !strings.Contains(csp, "; connect-src "+base+"/begin "+base+"/finish") ||
		strings.Contains(csp, "'self'") && strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.Contains(page, `<script src="`+base+`/script.js" defer></script>`) || !strings.Contains(page, `data-begin="`+base+`/begin"`) {
		t.Fatalf("page:\n%s", page)
	}
	if strings.Contains(page, `<button type="submit">`) {
		t.Fatal("a button on a page whose script does all")
	}
	st, js := get(t, b, base+"/script.js")
	if st != http.StatusOK || js != chaintest.ScriptBody {
		t.Fatalf("script: %d %q", st, js)
	}
	f := form(page)
	req := map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf")}

	// Not JSON, no CSRF token, another browser: refused.
	if st, _ := c.round(b, "begin", "text/plain", req); st != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d", st)
	}
	if st, _ := c.round(b, "begin", "application/json", map[string]any{"attempt": f.Get("attempt"), "csrf": "x"}); st != http.StatusForbidden {
		t.Fatalf("bad CSRF: %d", st)
	}
	if st, _ := c.round(c.client(), "begin", "application/json", req); st != http.StatusBadRequest {
		t.Fatalf("another browser: %d", st)
	}
	if st, r := c.round(b, "finish", "application/json", req); st != http.StatusBadRequest || r.Error == "" {
		t.Fatalf("finish without begin: %d %+v", st, r)
	}

	st, r := c.round(b, "begin", "application/json", req)
	if st != http.StatusOK || r.Data.Challenge == "" || r.Continuation == "" {
		t.Fatalf("begin: %d %+v", st, r)
	}
	wrong := map[string]any{"attempt": req["attempt"], "csrf": req["csrf"], "continuation": r.Continuation, "data": map[string]string{"answer": "no"}}
	if st, r := c.round(b, "finish", "application/json", wrong); st != http.StatusUnauthorized || r.Error != "The key's answer is wrong." {
		t.Fatalf("wrong answer: %d %+v", st, r)
	}
	// The continuation was spent by the wrong answer.
	right := map[string]any{"attempt": req["attempt"], "csrf": req["csrf"], "continuation": r.Continuation, "data": map[string]string{"answer": "ok:" + r.Data.Challenge}}
	if st, _ := c.round(b, "finish", "application/json", right); st != http.StatusBadRequest {
		t.Fatalf("spent continuation: %d", st)
	}
	_, r = c.round(b, "begin", "application/json", req)
	right["continuation"], right["data"] = r.Continuation, map[string]string{"answer": "ok:" + r.Data.Challenge}
	st, r = c.round(b, "finish", "application/json", right)
	if st != http.StatusOK || !strings.HasPrefix(r.Next, "/login?attempt=") {
		t.Fatalf("finish: %d %+v", st, r)
	}
	if st, body := get(t, b, c.srv.URL+r.Next); body != c.done(c.alice.Subject, "pwd", "hwk", "user", "mfa") {
		t.Fatalf("after the key: %d %s", st, body)
	}
	if st, _ := c.round(b, "finish", "application/json", right); st == http.StatusOK {
		t.Fatal("finish replayed")
	}
}

// A script from the static assets is allowed by its own URL.
func TestScriptedModuleStaticScript(t *testing.T) {
	c := scriptEnv(t, `{"static": "form_post.js"}`)
	_, resp, _ := c.keyPage()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src "+c.srv.URL+"/static/form_post.js;") {
		t.Fatalf("CSP %q", csp)
	}
	if st, _ := get(t, c.client(), c.srv.URL+"/login/m/My%20key/script.js"); st != http.StatusNotFound {
		t.Fatalf("own script of a module without one: %d", st)
	}
}

// A UserModule creates a user and is told of every pass: it activates
// the account once the activation level is reached by another module.
func TestUserModule(t *testing.T) {
	c := newCEnv(t, []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Signup", Kind: "test-signup", Levels: []string{"1"}, Settings: settings(`{"activation_level": "2"}`)},
		{Name: "Code", Kind: "testcode", Levels: []string{"2"}, After: []string{"Signup"}, Settings: settingsFor("testcode")},
	}, nil)
	b := c.client()
	_, page := get(t, b, c.srv.URL+"/start")
	_, page = c.choose(b, page, "Signup")
	_, page = post(t, b, c.srv.URL+"/login", form(page, "username", "bob", "email", "bob@example.com", "password", "a long enough password"))
	bob, err := c.users.Lookup(t.Context(), "bob")
	if err != nil {
		t.Fatalf("no user made: %v", err)
	}
	if len(bob.Groups) != 0 {
		t.Fatalf("active before the activation level: %v", bob.Groups)
	}
	if st, body := post(t, b, c.srv.URL+"/login", form(page, "code", "123456")); body != c.done(bob.Subject, "pwd", "otp", "mfa") {
		t.Fatalf("after the code: %d %s", st, body)
	}
	if bob, _ = c.users.Get(t.Context(), bob.Subject); len(bob.Groups) != 1 || bob.Groups[0] != "active" {
		t.Fatalf("not activated: %v", bob.Groups)
	}
}

// A module that resets a password ends the user's sessions (unless the
// configuration keeps them); the sign-in goes on in a new session.
func TestEndSessionsOnReset(t *testing.T) {
	for _, keep := range []bool{false, true} {
		c := newCEnv(t, []chain.ModuleConfig{mod("Password", "password", []string{"1"}), {Name: "Reset", Kind: "test-reset", Levels: []string{"1"}}},
			func(o *chain.Options) { o.KeepSessionsOnPasswordChange = keep })
		x := c.client()
		_, page := get(t, x, c.srv.URL+"/start")
		_, page = c.choose(x, page, "Password")
		post(t, x, c.srv.URL+"/login", form(page, "username", "alice", "password", "pw"))
		sx, err := c.sessions.Load(withJar(x, c.srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		y := c.client()
		_, page = get(t, y, c.srv.URL+"/start")
		_, page = c.choose(y, page, "Reset")
		if st, body := post(t, y, c.srv.URL+"/login", form(page, "username", "alice", "password", "a brand new password")); body != c.done(c.alice.Subject, "pwd") {
			t.Fatalf("reset: %d %s", st, body)
		}
		_, err = c.sessions.Get(t.Context(), sx.ID)
		if ended := errors.Is(err, session.ErrNoSession); ended == keep {
			t.Fatalf("keep %v: the other session ended %v (%v)", keep, ended, err)
		}
	}
}
