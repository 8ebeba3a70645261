package chaintest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/users"
)

// IdP stands in for a remote OAuth provider: its /authorize signs in
// whoever Who names at once and sends the browser back with a one-time
// code; its /token answers a code with the claims and the nonce.
type IdP struct {
	*httptest.Server
	mu    sync.Mutex
	who   Claims
	codes map[string]codeGrant
}

// Claims are the remote identity the IdP signs in.
type Claims struct {
	Sub, Email, Name string
}

type codeGrant struct {
	Claims
	Nonce, RedirectURI string
}

// NewIdP starts an IdP; close it with Close.
func NewIdP() *IdP {
	p := &IdP{codes: map[string]codeGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.Server = httptest.NewServer(mux)
	return p
}

// SignIn makes c the identity the IdP signs in next.
func (p *IdP) SignIn(c Claims) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.who = c
}

func (p *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || back.Scheme == "" {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	code := random()
	p.mu.Lock()
	p.codes[code] = codeGrant{Claims: p.who, Nonce: q.Get("nonce"), RedirectURI: back.String()}
	p.mu.Unlock()
	v := back.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	g, ok := p.codes[r.FormValue("code")]
	delete(p.codes, r.FormValue("code"))
	p.mu.Unlock()
	if !ok || g.RedirectURI != r.FormValue("redirect_uri") {
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"sub": g.Sub, "email": g.Email, "name": g.Name, "nonce": g.Nonce})
}

func random() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func init() {
	chain.Register("test-remote", newRemote)
}

// RemoteSettings of a test-remote module.
type RemoteSettings struct {
	// URL is the IdP's base URL.
	URL string `json:"url"`
	// Link: the remote account's email names the local user; without
	// it the module passes with unlinked claims.
	Link bool `json:"link,omitempty"`
	// Account: the account page offers linking an identity here (the
	// engine's Linker links it to the signed-in user).
	Account bool `json:"account,omitempty"`
}

// Validate: the URL is required.
func (s *RemoteSettings) Validate() error {
	if s.URL == "" {
		return errors.New("url is required")
	}
	return nil
}

type remote struct {
	d chain.Deps
	s RemoteSettings
}

func newRemote(d chain.Deps, s RemoteSettings) (chain.Module, error) {
	return &remote{d: d, s: s}, nil
}

// Account offers linking when the setting says so; linked identities
// are the Linker's, not listed here.
func (m *remote) Account(context.Context, users.User) (chain.AccountPart, error) {
	if !m.s.Account {
		return chain.AccountPart{}, nil
	}
	return chain.AccountPart{Title: "Linked accounts", Add: "Link the remote provider"}, nil
}

// Remove: nothing listed, nothing to remove.
func (m *remote) Remove(context.Context, users.User, string) error {
	return chain.RemoveRefused{Reason: "Nothing to remove."}
}

func (m *remote) Prompt(context.Context, *chain.Attempt) (chain.Prompt, error) {
	return chain.Prompt{Title: "Sign in with the remote provider", Submit: "Continue with Remote", Step: chain.StepRedirect}, nil
}

func (m *remote) Redirect(_ context.Context, _ *chain.Attempt, state, callback string) (string, []byte, error) {
	nonce := random()
	q := url.Values{"state": {state}, "redirect_uri": {callback}, "nonce": {nonce}, "client_id": {"gatehouse"}}
	return m.s.URL + "/authorize?" + q.Encode(), []byte(nonce), nil
}

func (m *remote) Callback(ctx context.Context, a *chain.Attempt, r *http.Request, keep []byte) (chain.Identity, error) {
	if e := r.Form.Get("error"); e != "" {
		return chain.Identity{}, chain.Reject("The remote provider said no: " + e)
	}
	form := url.Values{"code": {r.Form.Get("code")}, "redirect_uri": {m.d.CallbackURL}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.s.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := m.d.HTTP.Do(req)
	if err != nil {
		return chain.Identity{}, fmt.Errorf("test-remote token request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return chain.Identity{}, chain.Reject("The remote provider did not accept the sign-in.")
	}
	var c struct{ Sub, Email, Name, Nonce string }
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return chain.Identity{}, err
	}
	if c.Nonce != string(keep) {
		return chain.Identity{}, chain.Reject("The remote sign-in was not for this page.")
	}
	amr := []string{chain.AMRPassword}
	if !m.s.Link {
		return chain.Identity{Unlinked: &chain.Claims{Issuer: m.s.URL, Subject: c.Sub, Email: c.Email, Name: c.Name}, AMR: amr}, nil
	}
	u, err := m.d.Users.Lookup(ctx, c.Email)
	if err != nil {
		return chain.Identity{}, chain.Reject("No account here has that address.")
	}
	return chain.Identity{Subject: u.Subject, AMR: amr}, nil
}

var _ chain.RedirectModule = (*remote)(nil)
