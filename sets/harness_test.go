package sets

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
)

const issuer = "https://auth.example.test"

// keySigner signs like the provider's keys do: one ES256 key, its kid
// published in a JWKS.
type keySigner struct {
	priv *ecdsa.PrivateKey
	jwks jose.JSONWebKeySet
}

func newSigner(t *testing.T) *keySigner {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &keySigner{priv: priv, jwks: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}}
}

func (k *keySigner) SignClaims(typ string, claims any) (string, error) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.priv, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}

// received is one SET a receiver took, verified.
type received struct {
	Claims map[string]any
	Typ    string
	Auth   string
}

// receiver is an RFC 8935 endpoint that verifies each SET against the
// JWKS (signature, typ, iss, aud, a jti never seen before) and answers
// with the next status of its script (202 when the script is done).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	jwks   jose.JSONWebKeySet
	aud    string
	mu     sync.Mutex
	script []int
	got    []received
	jtis   map[string]int
	posts  int
}

func newReceiver(t *testing.T, jwks jose.JSONWebKeySet, aud string, script ...int) *receiver {
	rc := &receiver{t: t, jwks: jwks, aud: aud, script: script, jtis: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.posts++
	fail := func(code, desc string) {
		rc.t.Errorf("receiver refused a SET: %s: %s", code, desc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"err": code, "description": desc})
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/secevent+jwt" {
		fail("invalid_request", "want a POST of application/secevent+jwt, got "+r.Method+" "+r.Header.Get("Content-Type"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	tok, err := jwt.ParseSigned(string(body), []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		fail("invalid_request", err.Error())
		return
	}
	var claims map[string]any
	if err := tok.Claims(rc.jwks, &claims); err != nil {
		fail("invalid_key", err.Error())
		return
	}
	typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string)
	switch {
	case typ != TokenType:
		fail("invalid_request", "typ "+typ)
		return
	case claims["iss"] != issuer:
		fail("invalid_issuer", "iss")
		return
	case claims["aud"] != rc.aud:
		fail("invalid_audience", "aud")
		return
	}
	if _, ok := claims["iat"].(float64); !ok {
		fail("invalid_request", "iat is not a number")
		return
	}
	for _, pl := range claims["events"].(map[string]any) {
		if ts, ok := pl.(map[string]any)["event_timestamp"]; ok && !isWhole(ts) {
			fail("invalid_request", "event_timestamp is not a whole number")
			return
		}
	}
	jti, _ := claims["jti"].(string)
	status := http.StatusAccepted
	if len(rc.script) > 0 {
		status, rc.script = rc.script[0], rc.script[1:]
	}
	if status == http.StatusAccepted {
		rc.jtis[jti]++
		rc.got = append(rc.got, received{Claims: claims, Typ: typ, Auth: r.Header.Get("Authorization")})
	}
	if status == http.StatusBadRequest {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"err":"invalid_audience","description":"not for us\u0007"}`)
		return
	}
	w.WriteHeader(status)
}

func (rc *receiver) sets() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// env is a service over a store, with its audit trail kept.
type env struct {
	svc   *Service
	st    store.Store
	clock *clock
	trail *bytes.Buffer
	log   *audit.Log
}

var alice = Person{Subject: "sub-alice", Username: "alice", Email: "alice@example.test",
	Claims: map[string]any{"preferred_username": "alice", "groups": []string{"staff"}}}

func newEnv(t *testing.T, st store.Store, signer Signer, rs []Receiver, opt func(*Config)) *env {
	t.Helper()
	e := &env{st: st, clock: &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, trail: &bytes.Buffer{}}
	e.log = audit.New(slog.New(slog.NewJSONHandler(e.trail, nil)))
	people := map[string]Person{alice.Subject: alice}
	cfg := Config{Store: st, Issuer: issuer, Signer: signer, Receivers: rs, Now: e.clock.Now, Audit: e.log,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lookup: func(_ context.Context, sub, username string) (Person, bool) {
			for _, p := range people {
				if p.Subject == sub || sub == "" && p.Username == username {
					return p, true
				}
			}
			return Person{}, false
		}}
	if opt != nil {
		opt(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.log.Subscribe(svc.Observe)
	return e
}

func newMemEnv(t *testing.T, rs []Receiver, opt func(*Config)) (*env, *keySigner) {
	k := newSigner(t)
	return newEnv(t, memstore.New(), k, rs, opt), k
}

// queued returns the queued deliveries, oldest first.
func (e *env) queued(t *testing.T) []delivery {
	t.Helper()
	ctx := context.Background()
	ids, err := e.st.SetMembers(ctx, setQueue)
	if err != nil {
		t.Fatal(err)
	}
	var out []delivery
	for _, id := range slices.Sorted(slices.Values(ids)) {
		b, err := e.st.Get(ctx, keyDelivery+id)
		if err != nil {
			t.Fatal(err)
		}
		var d delivery
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func newMemStore() store.Store { return memstore.New() }

func isWhole(v any) bool {
	f, ok := v.(float64)
	return ok && f == float64(int64(f))
}
