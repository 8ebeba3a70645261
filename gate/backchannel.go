package gate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-idp/gatehouse/store"
)

const (
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	keyJTI           = "gate-jti:"
)

// backchannel receives a logout token from the provider (Back-Channel
// Logout 1.0 §2.5–2.8) and ends the gate sessions it names.
func (g *Gate) backchannel(w http.ResponseWriter, r *http.Request) {
	fail := func(desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": desc})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST a logout_token", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail("unreadable body")
		return
	}
	raw := r.PostForm.Get("logout_token")
	ctx := r.Context()
	if _, err := g.oidcProvider(ctx); err != nil {
		http.Error(w, "provider unreachable", http.StatusServiceUnavailable)
		return
	}
	c, err := g.verifyLogoutToken(ctx, raw)
	if err != nil {
		fail(err.Error())
		return
	}
	// A token is accepted once (jti), for as long as it could be valid.
	if err := g.cfg.Store.Create(ctx, keyJTI+c.JTI, []byte{1}, 10*time.Minute); errors.Is(err, store.ErrExists) {
		fail("logout token replayed")
		return
	} else if err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	// The upstream hooks of the sessions hear of it, as with any logout.
	if _, err := dropSessions(ctx, g.cfg.Store, g.cfg.Queue, c.SID, c.Subject, g.cfg.Now()); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

type logoutClaims struct {
	Subject string                     `json:"sub"`
	SID     string                     `json:"sid"`
	JTI     string                     `json:"jti"`
	Nonce   *string                    `json:"nonce"`
	Events  map[string]json.RawMessage `json:"events"`
}

func (g *Gate) verifyLogoutToken(ctx context.Context, raw string) (*logoutClaims, error) {
	if raw == "" {
		return nil, errors.New("logout_token is required")
	}
	// Signature, issuer, audience and expiry as for an ID token.
	tok, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, errors.New("logout token not valid: " + err.Error())
	}
	var c logoutClaims
	if err := tok.Claims(&c); err != nil {
		return nil, err
	}
	switch {
	case c.Nonce != nil:
		return nil, errors.New("a logout token must not have a nonce")
	case c.Events[backchannelEvent] == nil:
		return nil, errors.New("not a back-channel logout token (events)")
	case c.SID == "" && c.Subject == "":
		return nil, errors.New("logout token names neither sid nor sub")
	case c.JTI == "":
		return nil, errors.New("logout token has no jti")
	}
	c.Subject = tok.Subject
	return &c, nil
}
