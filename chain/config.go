package chain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/web"
)

// Remember modes of a module.
const (
	RememberNone       = "none"
	RememberSession    = "session"
	RememberPersistent = "persistent"
)

// ModuleConfig is one module of the chain as an admin configures it.
type ModuleConfig struct {
	// Name is unique in the chain and shown to people choosing a method.
	Name string `json:"name"`
	// Kind selects the implementation: "password", "totp", ….
	Kind string `json:"kind"`
	// Levels this module grants when passed.
	Levels []string `json:"levels"`
	// Remember: "none" (default), "session" or "persistent".
	Remember string `json:"remember,omitempty"`
	// RememberFor is how long a persistent remember lasts.
	RememberFor time.Duration `json:"remember_for,omitempty"`
	// Disabled modules are never offered.
	Disabled bool `json:"disabled,omitempty"`
	// ShowOnlyWhenNeeded: offered only when acr_values asks for one of its
	// levels.
	ShowOnlyWhenNeeded bool `json:"show_only_when_needed,omitempty"`
	// After names the modules this one may follow; empty for a start
	// module (a chain may have several: a sign-in form, "create an
	// account", "email me a link").
	After []string `json:"after,omitempty"`
	// Settings are the kind's own, a JSON object decoded strictly into
	// the kind's settings struct.
	Settings json.RawMessage `json:"settings,omitempty"`
}

// Config is a whole chain.
type Config struct {
	Modules []ModuleConfig `json:"modules"`
}

// DefaultConfig is the chain used when none is configured: password only,
// level "1".
func DefaultConfig() Config {
	return Config{Modules: []ModuleConfig{{Name: "Password", Kind: "password", Levels: []string{"1"}}}}
}

type node struct {
	ModuleConfig
	mod  Module
	next []*node
	root bool
	// mailing is a MailModule's, asked once.
	mailing Mailing
}

// build validates cfg and instantiates its modules.
func (e *Engine) build(cfg Config) error {
	if len(cfg.Modules) == 0 {
		return fmt.Errorf("chain: no modules")
	}
	all := map[string]*node{}
	var list []*node
	for i, mc := range cfg.Modules {
		if mc.Name == "" {
			return fmt.Errorf("chain: module %d has no name", i+1)
		}
		if _, dup := all[mc.Name]; dup {
			return fmt.Errorf("chain: duplicate module name %q", mc.Name)
		}
		if len(mc.Levels) == 0 {
			return fmt.Errorf("chain: module %q grants no levels", mc.Name)
		}
		switch mc.Remember {
		case "", RememberNone, RememberSession, RememberPersistent:
		default:
			return fmt.Errorf("chain: module %q: remember must be none, session or persistent, not %q", mc.Name, mc.Remember)
		}
		n, err := e.instantiate(mc, cfg)
		if err != nil {
			return fmt.Errorf("chain: module %q: %w", mc.Name, err)
		}
		all[mc.Name] = n
		list = append(list, n)
	}
	var roots []*node
	for _, mc := range cfg.Modules {
		n := all[mc.Name]
		if len(mc.After) == 0 {
			n.root = true
			roots = append(roots, n)
			continue
		}
		for _, a := range mc.After {
			p, ok := all[a]
			if !ok {
				return fmt.Errorf("chain: module %q comes after unknown module %q", mc.Name, a)
			}
			p.next = append(p.next, n)
		}
	}
	if len(roots) == 0 {
		return fmt.Errorf("chain: no start module (every module has `after`)")
	}
	// Every module must be reachable from a start module, and the tree
	// must have no cycle.
	ranks := map[string]int{}
	seen := map[string]bool{}
	var walk func(n *node, path []string) error
	walk = func(n *node, path []string) error {
		if slices.Contains(path, n.Name) {
			return fmt.Errorf("chain: cycle %v -> %s", path, n.Name)
		}
		seen[n.Name] = true
		for _, l := range n.Levels {
			if _, ok := ranks[l]; !ok {
				ranks[l] = len(ranks)
			}
		}
		for _, c := range n.next {
			if err := walk(c, append(path, n.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := walk(r, nil); err != nil {
			return err
		}
	}
	for _, mc := range cfg.Modules {
		if !seen[mc.Name] {
			var names []string
			for _, r := range roots {
				names = append(names, strconv.Quote(r.Name))
			}
			return fmt.Errorf("chain: module %q is never reached from the start modules (%s)", mc.Name, strings.Join(names, ", "))
		}
	}
	e.roots, e.list, e.nodes, e.ranks = roots, list, all, ranks
	return nil
}

// instantiate decodes a module's settings, builds it, and checks that
// the engine can serve what it is.
func (e *Engine) instantiate(mc ModuleConfig, cfg Config) (*node, error) {
	k, err := lookupKind(mc.Kind)
	if err != nil {
		return nil, err
	}
	settings, err := decodeSettings(mc.Kind, k.settings, mc.Settings)
	if err != nil {
		return nil, err
	}
	m, err := k.build(e.deps(mc.Name, cfg), settings)
	if err != nil {
		return nil, err
	}
	n := &node{ModuleConfig: mc, mod: m}
	_, form := m.(FormModule)
	_, redirect := m.(RedirectModule)
	sm, scripted := m.(ScriptedModule)
	mm, mailing := m.(MailModule)
	if !form && !redirect && !scripted && !mailing {
		return nil, fmt.Errorf("kind %s can pass no way (it is no form, redirect, scripted or mail module)", mc.Kind)
	}
	if (redirect || scripted || mailing) && e.origin == "" {
		return nil, fmt.Errorf("kind %s needs the issuer URL for its links", mc.Kind)
	}
	if scripted {
		s := sm.Script()
		switch {
		case (s.Static == "") == (len(s.Body) == 0):
			return nil, fmt.Errorf("kind %s: its script must be a static asset or a body, one of the two", mc.Kind)
		case s.Static != "" && !web.HasStatic(s.Static):
			return nil, fmt.Errorf("kind %s: no static asset %q", mc.Kind, s.Static)
		}
	}
	if mailing {
		if e.opt.Mailer == nil {
			return nil, fmt.Errorf("kind %s sends mail, and no mail is configured", mc.Kind)
		}
		n.mailing = mm.Mailing()
		if n.mailing.TTL <= 0 {
			n.mailing.TTL = defaultMailTTL
		}
	}
	return n, nil
}
