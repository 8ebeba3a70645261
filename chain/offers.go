package chain

import (
	"net/http"

	"github.com/gatehouse-idp/gatehouse/web"
)

// How several modules offered at one step are presented. Modules that
// are a way in beside signing in (Offerer: password forgotten, a link by
// mail, creating an account) are links under the page of the one module
// that is not; only when there is no such single module does the person
// choose first.

// landing is the module whose page a step shows when the person chose
// none: the only one offered, or the only one offered that is not an
// Offerer nor an Autofiller (whose page is then that one's), else the
// only Autofiller. nil means the person chooses.
func landing(offered []*node) *node {
	if len(offered) == 1 {
		return offered[0]
	}
	var only, fill *node
	fills := 0
	for _, o := range offered {
		if _, offer := o.mod.(Offerer); offer {
			continue
		}
		if autofills(o) {
			fill, fills = o, fills+1
			continue
		}
		if only != nil {
			return nil
		}
		only = o
	}
	if only == nil && fills == 1 {
		return fill
	}
	return only
}

// autofills reports whether n works from another form's autofill.
func autofills(n *node) bool {
	af, ok := n.mod.(Autofiller)
	return ok && af.Autofill() != ""
}

// Branded is a module that signs in at another site (a remote
// provider): where it is offered it is that site's button, with the
// site's name and mark.
type Branded interface {
	// Brand is the site's name and mark: a mark the stylesheet draws
	// (web.Marks), "" for none.
	Brand() (name, mark string)
}

// choiceOf is the link to module n's page in attempt a.
func (e *Engine) choiceOf(a *Attempt, n *node) choice {
	c := choice{Name: label(n), URL: e.stepURL(a, n.Name)}
	if b, ok := n.mod.(Branded); ok {
		name, mark := b.Brand()
		if name != "" {
			c.Name = name
		}
		if web.KnownMark(mark) {
			c.Mark = mark
		}
	}
	return c
}

// label is how a module is named where it is offered: its offer's label,
// else its name.
func label(n *node) string {
	if o, ok := n.mod.(Offerer); ok {
		if l := o.Offer(); l != "" {
			return l
		}
	}
	return n.Name
}

// chooseMethod shows the choice between the modules offered: those that
// are sign-in methods as buttons, the offers as links under them (or as
// the buttons when there are only offers).
func (e *Engine) chooseMethod(w http.ResponseWriter, a *Attempt, offered []*node, message string) {
	var methods, offers []choice
	for _, o := range offered {
		c := e.choiceOf(a, o)
		if _, offer := o.mod.(Offerer); offer {
			offers = append(offers, c)
		} else {
			methods = append(methods, c)
		}
	}
	if len(methods) == 0 {
		methods, offers = offers, nil
	}
	web.Render(w, http.StatusOK, "methods.html", web.Page{Title: "Sign in", Static: e.opt.StaticPath, Message: message,
		Data: struct {
			Client          string
			Choices, Offers []choice
		}{a.Req.Client, methods, offers}})
}
