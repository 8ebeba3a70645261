package chain

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/web"
)

// A ScriptedModule's page loads its one script and talks JSON to the
// instance's begin and finish endpoints. What Begin keeps travels
// sealed (encrypted, bound to attempt, browser and module) in the
// continuation, so a first request writes nothing; Finish spends it once.

const (
	purposeScript = "chain-script"
	keySpent      = "script-spent:"
	scriptTTL     = 5 * time.Minute
)

type continuation struct {
	ID      string `json:"id"`
	Attempt string `json:"a"`
	Browser string `json:"b"`
	Module  string `json:"m"`
	Keep    []byte `json:"k,omitempty"`
}

type scriptRequest struct {
	Attempt      string          `json:"attempt"`
	CSRF         string          `json:"csrf"`
	Data         json.RawMessage `json:"data,omitempty"`
	Continuation string          `json:"continuation,omitempty"`
	Remember     bool            `json:"remember,omitempty"`
}

// scriptPage sets what a scripted module's page needs: its one script,
// allowed by URL in the CSP with fetches to its own endpoints only.
func (e *Engine) scriptPage(p *web.Page, d *loginData, n *node, sm ScriptedModule) {
	base := e.origin + e.moduleBase(n.Name)
	if s := sm.Script(); s.Static != "" {
		p.ScriptSrc = e.origin + e.opt.StaticPath + "/" + s.Static
	} else {
		p.ScriptSrc = base + "/script.js"
	}
	d.Begin, d.Finish = base+"/begin", base+"/finish"
	p.ConnectSrc = []string{d.Begin, d.Finish}
}

// autofillPage lets the one Autofiller offered with the sign-in form of
// module n work from its login name field: its script and endpoints on
// the page, its token in the field's autocomplete. The pages of offers
// (sign-up, password forgotten) ask for a name for another purpose.
func (e *Engine) autofillPage(p *web.Page, d *loginData, n *node, offered []*node) {
	if _, offer := n.mod.(Offerer); offer {
		return
	}
	i := slices.IndexFunc(d.Fields, func(f Field) bool { return slices.Contains(strings.Fields(f.Autocomplete), "username") })
	if i < 0 {
		return
	}
	for _, o := range offered {
		if af, ok := o.mod.(Autofiller); ok && af.Autofill() != "" {
			d.Fields = slices.Clone(d.Fields)
			d.Fields[i].Autocomplete += " " + af.Autofill()
			e.scriptPage(p, d, o, af)
			return
		}
	}
}

// serveScript serves a script the module carries itself.
func (e *Engine) serveScript(w http.ResponseWriter, r *http.Request, sm ScriptedModule) bool {
	s := sm.Script()
	if len(s.Body) == 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.Body)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": web.Text(w, msg)}) // in the page's language
}

// scriptRound answers a scripted page's begin or finish request.
func (e *Engine) scriptRound(w http.ResponseWriter, r *http.Request, n *node, sm ScriptedModule, finish bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		jsonError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	// JSON only: a form from another site cannot send it without asking
	// first (CORS), and the CSRF token is checked besides.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		jsonError(w, http.StatusUnsupportedMediaType, "send application/json")
		return
	}
	var req scriptRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "the request could not be read")
		return
	}
	ctx := r.Context()
	a, err := e.loadAttempt(w, r, req.Attempt)
	if err != nil {
		e.jsonFail(w, err)
		return
	}
	if !e.opt.Sessions.CheckCSRF(a.Browser, "login:"+a.ID, req.CSRF) {
		jsonError(w, http.StatusForbidden, "This page has expired. Go back to the application and sign in again.")
		return
	}
	offered, err := e.offered(ctx, a)
	if err != nil {
		e.jsonFail(w, err)
		return
	}
	if offeredNode(offered, n.Name) == nil {
		jsonError(w, http.StatusBadRequest, "This step is not the one the sign-in expects now.")
		return
	}
	g, err := e.guardFor(ctx, r, a.Subject, n, nil)
	if err != nil {
		e.jsonFail(w, err)
		return
	}
	if !finish {
		if err := e.admissible(ctx, g, a, n); err != nil {
			e.jsonFail(w, err)
			return
		}
		out, keep, err := sm.Begin(ctx, a, req.Data)
		if err != nil {
			e.jsonFail(w, err)
			return
		}
		ttl := min(scriptTTL, a.Expires.Sub(e.opt.Sessions.Now()))
		if ttl <= 0 {
			e.jsonFail(w, errAttemptGone)
			return
		}
		cont, err := e.opt.Sessions.Seal(purposeScript, continuation{ID: randomID(), Attempt: a.ID, Browser: a.Browser, Module: n.Name, Keep: keep}, ttl)
		if err != nil {
			e.jsonFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": out, "continuation": cont})
		return
	}
	var c continuation
	if req.Continuation == "" || len(req.Continuation) > maxTokenBytes || e.opt.Sessions.Open(purposeScript, req.Continuation, &c) != nil ||
		c.Attempt != a.ID || c.Browser != a.Browser || c.Module != n.Name {
		e.failed(ctx, g, a, n, "script answer without a valid continuation")
		jsonError(w, http.StatusBadRequest, "This step has expired. Start it again.")
		return
	}
	// Spent once, whatever the answer: a replayed answer finds it used.
	if err := e.opt.Store.Create(ctx, keySpent+c.ID, []byte{1}, scriptTTL); err != nil {
		e.failed(ctx, g, a, n, "script answer replayed")
		jsonError(w, http.StatusBadRequest, "This step was already answered. Start it again.")
		return
	}
	id, err := e.check(ctx, g, a, n, false, func() (Identity, error) { return sm.Finish(ctx, a, req.Data, c.Keep) })
	if err != nil {
		e.jsonFail(w, err)
		return
	}
	passed, err := e.accept(w, r, a, n, id, req.Remember)
	if err != nil {
		e.jsonFail(w, err)
		return
	}
	next := e.stepURL(a, "")
	if !passed {
		next = e.stepURL(a, n.Name)
	}
	writeJSON(w, http.StatusOK, map[string]string{"next": next})
}

// jsonFail is fail for a script: the same errors, as JSON a page can show.
func (e *Engine) jsonFail(w http.ResponseWriter, err error) {
	var b *blockedError
	switch rej, ok := IsRejection(err); {
	case ok:
		jsonError(w, http.StatusUnauthorized, rej.Message)
	case errors.As(err, &b):
		retryAfter(w, b.after)
		jsonError(w, http.StatusTooManyRequests, "There were too many failed sign-in attempts. Wait a moment, then try again.")
	case errors.Is(err, errAttemptGone), errors.Is(err, errSessionEnded):
		jsonError(w, http.StatusBadRequest, "This sign-in has expired. Go back to the application and sign in again.")
	case errors.Is(err, errAttemptLocked):
		jsonError(w, http.StatusTooManyRequests, "This sign-in was stopped after too many failed attempts.")
	case errors.Is(err, errNotLinked), errors.Is(err, errAccountDisabled):
		jsonError(w, http.StatusForbidden, "This account cannot sign in here.")
	default:
		e.opt.Logger.Error("login step failed", "error", err)
		jsonError(w, http.StatusServiceUnavailable, "The sign-in service could not complete this step. Please try again in a moment.")
	}
}
