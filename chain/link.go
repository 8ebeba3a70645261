package chain

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/logout"
	"github.com/gatehouse-idp/gatehouse/session"
	"github.com/gatehouse-idp/gatehouse/users"
)

// An identity at another issuer becomes a local user's through the
// Linker. When it names an existing account it is not linked to (the
// same verified address), the Linker answers ProveAccount: the attempt
// keeps the identity as Pending, the person signs in to that account in
// the same attempt — the whole chain, as for any sign-in — and only
// when that sign-in completes is the identity linked (attachPending).
// Signing in as someone else drops it. An address is never a key to an
// account.

// PendingLink is an identity waiting for its account's sign-in.
type PendingLink struct {
	Claims  Claims `json:"claims"`
	Subject string `json:"sub"`
}

// link asks the Linker for the local user of c, which module n passed
// with. A ProveAccount answer is kept in the attempt and returned.
func (e *Engine) link(ctx context.Context, a *Attempt, n *node, c Claims) (string, error) {
	if e.opt.Linker == nil {
		return "", errNotLinked
	}
	c.Module = n.Name
	sub, err := e.opt.Linker.Link(ctx, a, c)
	var prove *ProveAccount
	switch {
	case errors.As(err, &prove) && a.Account():
		// On the account page the signed-in user is the proof; a Linker
		// that asks for another account's is answered as one that
		// names another account.
		return "", errOtherAccount
	case errors.As(err, &prove):
		a.Pending = &PendingLink{Claims: c, Subject: prove.Subject}
		// The proof is a sign-in now, in this attempt: what the
		// browser's session or trusted devices passed does not count
		// (a session cookie alone, in an unattended browser, must not
		// plant a lasting way in).
		a.Subject, a.Passed, a.FromSession, a.SessionID, a.Fresh = "", nil, nil, "", false
		e.opt.Audit.Record(ctx, audit.Event{Event: audit.LinkRefused, Module: n.Name, Subject: prove.Subject,
			Target: c.Issuer + " " + c.Subject, Reason: "the identity's address names an account it is not linked to: asked to sign in to it"})
		if err := e.saveAttempt(ctx, a); err != nil {
			return "", err
		}
		return "", prove
	case errors.Is(err, ErrNotLinked):
		return "", errNotLinked
	case err != nil:
		return "", err
	case sub == "":
		return "", fmt.Errorf("chain: the linker gave module %q no subject", n.Name)
	}
	return sub, nil
}

// attachPending links the attempt's pending identity to the account the
// attempt signed in to, when it is the account the identity named.
func (e *Engine) attachPending(ctx context.Context, a *Attempt, g guard) error {
	p := a.Pending
	if p == nil {
		return nil
	}
	a.Pending = nil
	target := p.Claims.Issuer + " " + p.Claims.Subject
	if p.Subject != a.Subject || !a.Fresh {
		e.record(ctx, audit.Event{Event: audit.LinkRefused, Target: target, Reason: "not signed in to the account to link in this sign-in"}, g, a, nil)
		return nil
	}
	err := e.opt.Linker.Attach(ctx, a.Subject, p.Claims)
	if errors.Is(err, users.ErrLinked) {
		e.record(ctx, audit.Event{Event: audit.LinkRefused, Target: target, Reason: "linked to another account meanwhile"}, g, a, nil)
		return nil
	} else if err != nil {
		return fmt.Errorf("linking an identity at %s: %w", p.Claims.Issuer, err)
	}
	e.record(ctx, audit.Event{Event: audit.IdentityLinked, Module: p.Claims.Module, Target: target, Reason: "proven by signing in to the account"}, g, a, nil)
	return nil
}

// passLevels are the levels module n's pass reached: those id names
// (each one of n's), else all of n's.
func passLevels(n *node, id Identity) ([]string, error) {
	if len(id.Levels) == 0 {
		return n.Levels, nil
	}
	for _, l := range id.Levels {
		if !slices.Contains(n.Levels, l) {
			return nil, fmt.Errorf("chain: module %q passed with level %q, which it does not grant", n.Name, l)
		}
	}
	return slices.Clone(id.Levels), nil
}

// againFor are the modules passed with only some of their levels (a
// remote provider's acr decided) that grant a wanted level they did not
// reach then: offered again for a step-up, besides those in offered.
func (e *Engine) againFor(passed []session.Passed, want map[string]bool, offered []*node) []*node {
	var out []*node
	for _, p := range passed {
		n, ok := e.nodes[p.Module]
		if !ok || n.Disabled || slices.Contains(offered, n) || slices.Contains(out, n) {
			continue
		}
		if slices.ContainsFunc(n.Levels, func(l string) bool { return want[l] && !slices.Contains(p.Levels, l) }) {
			out = append(out, n)
		}
	}
	return out
}

// rememberedLevels are the levels a remembered pass of n vouches for:
// those it reached then that n still grants (none recorded: all of n's).
func rememberedLevels(n *node, then []string) []string {
	if len(then) == 0 {
		return n.Levels
	}
	return slices.DeleteFunc(slices.Clone(then), func(l string) bool { return !slices.Contains(n.Levels, l) })
}

// PassedSessions ends the SSO sessions in which one module instance
// passed (Deps.Sessions): a remote provider's back-channel logout.
type PassedSessions interface {
	// EndPassed ends subject's live sessions in which the instance
	// passed with reference ref (Identity.Ref; "" any), for reason. It
	// returns how many it ended.
	EndPassed(ctx context.Context, subject, ref string, reason logout.Reason) (int, error)
}

type passedSessions struct {
	e      *Engine
	module string
}

func (p passedSessions) EndPassed(ctx context.Context, subject, ref string, reason logout.Reason) (int, error) {
	list, err := p.e.opt.Sessions.ListFor(ctx, subject)
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, s := range list {
		if !slices.ContainsFunc(s.Passed, func(x session.Passed) bool { return x.Module == p.module && (ref == "" || x.Ref == ref) }) {
			continue
		}
		if err := p.e.opt.Logout.End(ctx, s.ID, reason); err != nil {
			return ended, err
		}
		ended++
	}
	return ended, nil
}

// Endpoints is a module with endpoints of its own that other sites call
// outside any sign-in (a remote provider's back-channel logout). The
// engine serves LoginPath/m/<name>/<path> with Endpoint(path), for the
// paths the engine does not serve itself (callback, begin, finish,
// script.js, mail). nil: nothing there.
type Endpoints interface {
	Endpoint(path string) http.Handler
}

// UpstreamLogout is a module whose sign-ins can be ended at the other
// site too (a remote provider's end_session_endpoint): after a sign-out
// here the person is offered to sign out there as well.
type UpstreamLogout interface {
	// LogoutURL is where to sign out at the other site after pass p of
	// this module ended here, and the site's name; "" for nowhere.
	LogoutURL(ctx context.Context, p session.Passed) (name, to string, err error)
}

// Upstream is a place to sign out at too.
type Upstream struct{ Name, URL string }

// UpstreamLogouts are the other sites where the passes of an ended
// session can be ended too, one per module. A site that cannot be
// reached now is left out (logged): the sign-out here is done anyway.
func (e *Engine) UpstreamLogouts(ctx context.Context, passed []session.Passed) []Upstream {
	var out []Upstream
	for _, p := range passed {
		n, ok := e.nodes[p.Module]
		if !ok || n.Disabled {
			continue
		}
		ul, ok := n.mod.(UpstreamLogout)
		if !ok {
			continue
		}
		name, to, err := ul.LogoutURL(ctx, p)
		if err != nil {
			e.opt.Logger.Warn("gatehouse chain: signing out upstream", "module", n.Name, "error", err)
			continue
		}
		if to != "" {
			out = append(out, Upstream{Name: name, URL: to})
		}
	}
	return out
}
