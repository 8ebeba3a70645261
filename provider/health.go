package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// PathHealth answers load balancers: 200 when this instance can serve
// sign-ins (its store answers and it holds a signing key), else 503.
const PathHealth = "/healthz"

// healthTimeout bounds the store check: a hung store is unhealthy, not
// a hung health check.
const healthTimeout = 2 * time.Second

func (p *Provider) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	status, checks := http.StatusOK, map[string]string{"store": "ok", "keys": "ok"}
	if err := p.cfg.Store.Ping(ctx); err != nil {
		// The reason stays in the log: the endpoint is public.
		p.cfg.Logger.Warn("gatehouse health: store not reachable", "error", err)
		status, checks["store"] = http.StatusServiceUnavailable, "unreachable"
	}
	if _, err := p.cfg.Keys.Signer("JWT"); err != nil {
		p.cfg.Logger.Warn("gatehouse health: no signing key", "error", err)
		status, checks["keys"] = http.StatusServiceUnavailable, "missing"
	}
	out := struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}{"ok", checks}
	if status != http.StatusOK {
		out.Status = "unavailable"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}
