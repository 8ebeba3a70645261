package webauthn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/password"
	_ "github.com/gatehouse-idp/gatehouse/chain/registration"
	_ "github.com/gatehouse-idp/gatehouse/chain/webauthn"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/regulate"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

const pw = "violet tractor wanders 93 laps"

type nopSigner struct{}

func (nopSigner) SignClaims(string, any) (string, error) { return "token", nil }

// trail is the audit log, read by the tests.
type trail struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *trail) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }

// count counts the events named ev (with reason containing why).
func (s *trail) count(ev, why string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, line := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["event"] == ev && strings.Contains(fmt.Sprint(m["reason"]), why) {
			n++
		}
	}
	return n
}

// env is the real engine with a chain of password and webauthn modules,
// served at the issuer http://idp.localhost:<port> (WebAuthn wants a
// domain name; the test clients dial the server for any name).
type env struct {
	t      *testing.T
	st     *memstore.Store
	users  *users.Directory
	trail  *trail
	e      *chain.Engine
	opt    chain.Options
	issuer string
	rpID   string
	alice  users.User
	bob    users.User
}

func newEnv(t *testing.T, mods ...chain.ModuleConfig) *env {
	t.Helper()
	v := &env{t: t, trail: &trail{}, rpID: "idp.localhost"}
	v.st = memstore.New()
	t.Cleanup(func() { v.st.Close() })
	ctx := context.Background()
	sessions, err := session.NewManager(ctx, v.st, session.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.users = users.New(v.st, nil)
	q := logout.NewQueue(logout.QueueConfig{Store: v.st, Issuer: "https://idp.example", Signer: nopSigner{}})
	lo, err := logout.New(logout.Config{Store: v.st, Sessions: sessions, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := regulate.New(v.st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.alice, err = v.users.Create(ctx, users.User{Username: "alice", Name: "Alice"}, pw); err != nil {
		t.Fatal(err)
	}
	if v.bob, err = v.users.Create(ctx, users.User{Username: "bob"}, pw); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	v.issuer = "http://idp.localhost:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	opt := chain.Options{Store: v.st, Sessions: sessions, Users: v.users, Logout: lo, Regulate: reg, Issuer: v.issuer,
		Audit: audit.New(slog.New(slog.NewJSONHandler(v.trail, nil))), LoginPath: "/login", StaticPath: "/static"}
	v.opt = opt
	if v.e, err = chain.New(chain.Config{Modules: mods}, opt); err != nil {
		t.Fatal(err)
	}
	chaintest.Serve(t, mux, v.e, sessions, chain.Request{ReturnTo: "/done", Client: "Wiki", ClientID: "wiki"})
	return v
}

// The chains of the tests: a password, then a key for level 2; with
// start, also a passwordless passkey granting 1 and 2.
func twoFactor(settings string) []chain.ModuleConfig {
	return []chain.ModuleConfig{
		{Name: "Password", Kind: "password", Levels: []string{"1"}},
		{Name: "Key", Kind: "webauthn", Levels: []string{"2"}, After: []string{"Password"}, Settings: json.RawMessage(settings)},
	}
}

func withStart(settings string) []chain.ModuleConfig {
	return append(twoFactor(`{}`), chain.ModuleConfig{Name: "Passkey", Kind: "webauthn", Levels: []string{"1", "2"}, Settings: json.RawMessage(settings)})
}

// browser is a client with cookies that reaches the server by any name.
type browser struct {
	*http.Client
	v *env
}

func (v *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	addr := strings.TrimPrefix(v.issuer, "http://idp.localhost")
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1"+addr)
	}}
	return &browser{Client: &http.Client{Jar: jar, Transport: tr}, v: v}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.v.t.Helper()
	resp, err := b.Get(b.v.issuer + path)
	if err != nil {
		b.v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, f url.Values) (int, string) {
	b.v.t.Helper()
	resp, err := b.PostForm(b.v.issuer+path, f)
	if err != nil {
		b.v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// round is one JSON request of the page's script to module's endpoint.
type round struct {
	Data struct {
		Kind      string         `json:"kind"`
		Options   map[string]any `json:"options"`
		Mediation string         `json:"mediation"`
	} `json:"data"`
	Continuation string `json:"continuation"`
	Next         string `json:"next"`
	Error        string `json:"error"`
}

func (b *browser) round(module, endpoint string, body map[string]any) (int, round) {
	b.v.t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := b.Post(b.v.issuer+"/login/m/"+url.PathEscape(module)+"/"+endpoint, "application/json", bytes.NewReader(raw))
	if err != nil {
		b.v.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r round
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		b.v.t.Fatalf("%s %s: %d, no JSON: %v", module, endpoint, resp.StatusCode, err)
	}
	return resp.StatusCode, r
}

// password signs in as name with the password in a new sign-in asking
// acr, and returns the page that follows.
func (b *browser) password(name, acr string) string {
	b.v.t.Helper()
	_, page, _ := b.get("/start?acr=" + acr)
	_, page = b.post("/login", chaintest.Form(page, "username", name, "password", pw))
	return page
}

// ceremony runs module's begin and finish on page with key k (create
// or get, as Begin says); name names a new key. It returns finish's
// status and answer.
func (b *browser) ceremony(page, module string, k *softKey, begin map[string]any, name string) (int, round, round) {
	b.v.t.Helper()
	f := chaintest.Form(page)
	req := map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf"), "data": begin}
	st, r := b.round(module, "begin", req)
	if st != http.StatusOK {
		b.v.t.Fatalf("begin: %d %+v", st, r)
	}
	var cred map[string]any
	if r.Data.Kind == "create" {
		cred = k.create(r.Data.Options)
	} else {
		cred = k.get(r.Data.Options)
	}
	st, fin := b.round(module, "finish", map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf"),
		"continuation": r.Continuation, "data": map[string]any{"credential": cred, "name": name}})
	return st, r, fin
}

func (b *browser) done() string {
	b.v.t.Helper()
	_, body, _ := b.get("/done")
	return body
}

func (v *env) done(u users.User, amr ...string) string {
	return "DONE " + u.Subject + " " + strings.Join(amr, " ")
}

// register signs name in with the password at level 2 and registers k
// as their key (the chain's "Key" after the password).
func (v *env) register(name string, k *softKey) {
	v.t.Helper()
	b := v.browser()
	if st, _, fin := b.ceremony(b.password(name, "2"), "Key", k, nil, ""); st != http.StatusOK {
		v.t.Fatalf("%s registers: %d %+v", name, st, fin)
	}
}
