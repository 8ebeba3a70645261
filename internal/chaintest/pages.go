package chaintest

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/session"
)

// Serve mounts e on mux as the chain's tests drive it: /login and
// /login/ are the engine; /start begins a sign-in for req, with the acr
// values of its ?acr= (space-separated); /done answers "DONE subject
// amr…" for the browser's session, or 401 without one; /add?module=
// adds to the signed-in user's account with that module
// (Engine.StartAccount), coming back to /done.
func Serve(t testing.TB, mux *http.ServeMux, e *chain.Engine, sessions *session.Manager, req chain.Request) {
	mux.Handle("/login", e)
	mux.Handle("/login/", e)
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		req := req
		req.AcrValues = strings.Fields(r.URL.Query().Get("acr"))
		if err := e.Start(w, r, req); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("/add", func(w http.ResponseWriter, r *http.Request) {
		switch err := e.StartAccount(w, r, r.URL.Query().Get("module"), "/done"); {
		case errors.Is(err, session.ErrNoSession):
			http.Error(w, "no session", http.StatusUnauthorized)
		case errors.Is(err, chain.ErrNoAccountModule):
			http.Error(w, "no such module", http.StatusNotFound)
		case err != nil:
			t.Error(err)
		}
	})
	mux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) {
		s, err := sessions.Load(r)
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		o, _ := e.Evaluate(r.Context(), s.Subject, s.Passed, nil, time.Time{})
		fmt.Fprintf(w, "DONE %s %s", s.Subject, strings.Join(o.AMR, " "))
	})
}

var hidden = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// Form is page's hidden fields with the pairs of kv set (name, value,
// name, value…): what a browser posts from the page's form.
func Form(page string, kv ...string) url.Values {
	f := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(page, -1) {
		f.Set(m[1], html.UnescapeString(m[2]))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}
