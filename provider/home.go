package provider

import (
	"net/http"
	"net/url"

	"github.com/gatehouse-idp/gatehouse/web"
)

// home is the issuer's own page: who is signed in, with links to the
// account page and to sign out. Every other unknown path is a 404 page.
func (p *Provider) home(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != p.prefix+"/" && r.URL.Path != p.prefix {
		web.Error(w, p.staticPath(), http.StatusNotFound, "Page not found", "There is nothing at this address.")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		p.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
	s, user, err := p.liveSession(r.Context(), r)
	if err != nil {
		p.serverErrorPage(w, "loading session", err)
		return
	}
	site := p.cfg.Issuer
	if u, err := url.Parse(p.cfg.Issuer); err == nil {
		site = u.Host
	}
	d := struct{ User, Site, Account, Logout string }{Site: site, Account: p.prefix + PathAccount, Logout: p.prefix + PathEndSession}
	if s != nil {
		d.User = user.Username
	}
	w.Header().Set("Cache-Control", "no-store")
	web.Render(w, http.StatusOK, "home.html", web.Page{Title: "Sign-in service", Static: p.staticPath(), Data: d})
}
