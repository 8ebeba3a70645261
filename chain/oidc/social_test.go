package oidc_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// social stands in for GitHub, X and Facebook: their authorization,
// token and profile endpoints, answering in the shape each documents
// (GitHub's token answer form-encoded unless JSON is asked for; X's
// profile under "data"; Facebook checking appsecret_proof). It checks
// what each checks: the client, the PKCE verifier, the bearer token.
type social struct {
	*httptest.Server
	t *testing.T

	mu     sync.Mutex
	codes  map[string]string // code → PKCE challenge
	tokens map[string]bool
	// profiles, by provider: what its API answers.
	user, emails, xme, fbme string
}

func newSocial(t *testing.T) *social {
	s := &social{t: t, codes: map[string]string{}, tokens: map[string]bool{}}
	mux := http.NewServeMux()
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	for _, p := range []string{"GET /login/oauth/authorize", "GET /i/oauth2/authorize", "GET /v21.0/dialog/oauth"} {
		mux.HandleFunc(p, s.authorize)
	}
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("client_id") != "gh-client" || r.PostFormValue("client_secret") != "gh-secret" {
			s.tokenAnswer(w, r, "", "incorrect_client_credentials")
			return
		}
		s.exchange(w, r)
	})
	mux.HandleFunc("POST /2/oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		if id, sec, ok := r.BasicAuth(); !ok || id != "x-client" || sec != "x-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]string{"error": "unauthorized_client"})
			return
		}
		s.exchange(w, r)
	})
	mux.HandleFunc("POST /v21.0/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("client_id") != "fb-client" || r.PostFormValue("client_secret") != "fb-secret" {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(w, map[string]any{"error": map[string]any{"message": "Error validating client secret.", "type": "OAuthException", "code": 1}})
			return
		}
		s.exchange(w, r)
	})
	api := func(check func(r *http.Request) bool, body func() string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
			b := body()
			s.mu.Unlock()
			if !ok || !check(r) {
				w.WriteHeader(http.StatusUnauthorized)
				writeJSON(w, map[string]string{"message": "Bad credentials"})
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write([]byte(b))
		}
	}
	ghAccept := func(r *http.Request) bool { return r.Header.Get("Accept") == "application/vnd.github+json" }
	mux.HandleFunc("GET /api/v3/user", api(ghAccept, func() string { return s.user }))
	mux.HandleFunc("GET /api/v3/user/emails", api(ghAccept, func() string { return s.emails }))
	mux.HandleFunc("GET /2/users/me", api(func(*http.Request) bool { return true }, func() string { return s.xme }))
	mux.HandleFunc("GET /v21.0/me", api(func(r *http.Request) bool {
		mac := hmac.New(sha256.New, []byte("fb-secret"))
		mac.Write([]byte(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
		return r.URL.Query().Get("appsecret_proof") == hex.EncodeToString(mac.Sum(nil)) && r.URL.Query().Get("fields") == "id,name,email"
	}, func() string { return s.fbme }))
	return s
}

func (s *social) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("response_type") != "code" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	code := randomString()
	s.mu.Lock()
	s.codes[code] = q.Get("code_challenge")
	s.mu.Unlock()
	sendBack(w, r, code)
}

func (s *social) exchange(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	challenge, ok := s.codes[r.PostFormValue("code")]
	delete(s.codes, r.PostFormValue("code"))
	s.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
		s.tokenAnswer(w, r, "", "bad_verification_code")
		return
	}
	tok := "tok-" + randomString()
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	s.tokenAnswer(w, r, tok, "")
}

// tokenAnswer answers as GitHub does (form-encoded unless JSON is
// accepted, errors with status 200), and as the others do (JSON).
func (s *social) tokenAnswer(w http.ResponseWriter, r *http.Request, tok, errCode string) {
	if strings.HasPrefix(r.URL.Path, "/login/oauth/") && !strings.Contains(r.Header.Get("Accept"), "json") {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		v := url.Values{}
		if errCode != "" {
			v.Set("error", errCode)
		} else {
			v.Set("access_token", tok)
			v.Set("scope", "read:user,user:email")
			v.Set("token_type", "bearer")
		}
		_, _ = w.Write([]byte(v.Encode()))
		return
	}
	if errCode != "" {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": errCode})
		return
	}
	writeJSON(w, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 7200})
}

// socialEnv is an env whose Corp module is the kind against s.
func socialEnv(t *testing.T, kind string, extra map[string]any) (*env, *social) {
	var s *social
	v := newEnvWith(t, func(v *env) (string, []string, map[string]any) {
		s = newSocial(t)
		settings := map[string]any{"accounts": "create"}
		switch kind {
		case "github":
			settings["client_id"], settings["client_secret"] = "gh-client", "gh-secret"
			settings["auth_url"], settings["token_url"], settings["api_url"] = s.URL+"/login/oauth/authorize", s.URL+"/login/oauth/access_token", s.URL+"/api/v3"
		case "x":
			settings["client_id"], settings["client_secret"] = "x-client", "x-secret"
			settings["auth_url"], settings["token_url"], settings["api_url"] = s.URL+"/i/oauth2/authorize", s.URL+"/2/oauth2/token", s.URL
		case "facebook":
			settings["client_id"], settings["client_secret"] = "fb-client", "fb-secret"
			settings["auth_url"], settings["token_url"], settings["api_url"] = s.URL+"/v21.0/dialog/oauth", s.URL+"/v21.0/oauth/access_token", s.URL+"/v21.0"
		}
		for k, val := range extra {
			settings[k] = val
		}
		return kind, []string{"1"}, settings
	})
	return v, s
}

// GitHub: the numeric id is the subject, the login the username, and
// only the primary address GitHub verified counts.
func TestGitHub(t *testing.T) {
	v, s := socialEnv(t, "github", nil)
	ctx := context.Background()
	s.user = `{"login":"octocat","id":583231,"node_id":"MDQ6VXNlcjU4MzIzMQ==","type":"User","name":"The Octocat","email":null}`
	s.emails = `[{"email":"octo@old.example","primary":false,"verified":true,"visibility":null},{"email":"octocat@github.example","primary":true,"verified":true,"visibility":"public"}]`
	b := v.browser()
	if _, body := v.viaCorp(b, "", nil); !strings.HasPrefix(body, "DONE ") {
		t.Fatalf("sign-in: %s", body)
	}
	u, err := v.users.LookupRemote(ctx, s.URL, "583231")
	if err != nil || u.Username != "github-octocat" || u.Email != "octocat@github.example" || !u.EmailVerified || u.Name != "The Octocat" {
		t.Fatalf("account %+v %v", u, err)
	}
	// A primary address GitHub has not verified names nobody.
	s.mu.Lock()
	s.user = `{"login":"mallory","id":666,"name":null}`
	s.emails = `[{"email":"alice@example.com","primary":true,"verified":false,"visibility":"public"}]`
	s.mu.Unlock()
	b = v.browser()
	v.viaCorp(b, "", nil)
	if u, err := v.users.LookupRemote(ctx, s.URL, "666"); err != nil || u.Email != "" || u.Subject == v.alice.Subject {
		t.Fatalf("unverified address: %+v %v", u, err)
	}
	// A verified one of an account here asks for that account's password.
	s.mu.Lock()
	s.user = `{"login":"alice-gh","id":777,"name":"Alice"}`
	s.emails = `[{"email":"alice@example.com","primary":true,"verified":true,"visibility":"private"}]`
	s.mu.Unlock()
	b = v.browser()
	if _, page := v.viaCorp(b, "", nil); !strings.Contains(alert(page), "already has the address alice@example.com") {
		t.Fatalf("no proof asked: %q", alert(page))
	}
}

// X: the id is the subject; there is no address.
func TestX(t *testing.T) {
	v, s := socialEnv(t, "x", nil)
	s.xme = `{"data":{"id":"2244994945","name":"X Dev","username":"XDevelopers"}}`
	b := v.browser()
	_, page := v.get(b, v.srv.URL+"/start")
	if _, page = v.open(b, page, "Corp"); !strings.Contains(page, "Continue with X") {
		t.Fatalf("button:\n%s", page)
	}
	if _, body := v.viaCorp(b, "", nil); !strings.HasPrefix(body, "DONE ") {
		t.Fatalf("sign-in: %s", body)
	}
	if u, err := v.users.LookupRemote(context.Background(), s.URL, "2244994945"); err != nil || u.Username != "x-XDevelopers" || u.Email != "" {
		t.Fatalf("account %+v %v", u, err)
	}
}

// Facebook: requests carry appsecret_proof; the address is not counted
// as verified unless trust_email.
func TestFacebook(t *testing.T) {
	for _, trust := range []bool{false, true} {
		v, s := socialEnv(t, "facebook", map[string]any{"trust_email": trust})
		s.fbme = `{"id":"10158012345678901","name":"Alice Example","email":"alice@example.com"}`
		b := v.browser()
		st, body := v.viaCorp(b, "", nil)
		asked := strings.Contains(alert(body), "already has the address alice@example.com")
		if asked != trust || (!trust && !strings.HasPrefix(body, "DONE ")) {
			t.Fatalf("trust_email %v: %d %q", trust, st, alert(body))
		}
	}
}

// username_prefix "" keeps the provider's names as they are.
func TestSocialUsernamePrefix(t *testing.T) {
	v, s := socialEnv(t, "github", map[string]any{"username_prefix": ""})
	s.user, s.emails = `{"login":"octocat","id":1}`, `[]`
	v.viaCorp(v.browser(), "", nil)
	if u, err := v.users.LookupRemote(context.Background(), s.URL, "1"); err != nil || u.Username != "octocat" {
		t.Fatalf("account %+v %v", u, err)
	}
}

// A refused exchange (wrong secret) is a rejection, audited, no session.
func TestSocialRefusals(t *testing.T) {
	v, s := socialEnv(t, "github", map[string]any{"client_secret": "wrong"})
	s.user, s.emails = `{"login":"o","id":1}`, `[]`
	b := v.browser()
	if st, body := v.viaCorp(b, "", nil); st != http.StatusUnauthorized || !strings.Contains(alert(body), "GitHub did not accept the sign-in") || v.session(b) != nil {
		t.Fatalf("wrong secret: %d %q", st, alert(body))
	}
}
