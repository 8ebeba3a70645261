package chain

import (
	"fmt"
	"slices"
	"time"
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
	// After names the modules this one may follow; empty for the start
	// module.
	After []string `json:"after,omitempty"`
	// Settings are the kind's own options.
	Settings map[string]string `json:"settings,omitempty"`
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
	amr  []string
	next []*node
}

// build validates cfg and instantiates its modules.
func build(cfg Config, deps Deps) (start *node, all map[string]*node, ranks map[string]int, err error) {
	if len(cfg.Modules) == 0 {
		return nil, nil, nil, fmt.Errorf("chain: no modules")
	}
	all = map[string]*node{}
	for i, mc := range cfg.Modules {
		if mc.Name == "" {
			return nil, nil, nil, fmt.Errorf("chain: module %d has no name", i+1)
		}
		if _, dup := all[mc.Name]; dup {
			return nil, nil, nil, fmt.Errorf("chain: duplicate module name %q", mc.Name)
		}
		k, ok := kinds[mc.Kind]
		if !ok {
			return nil, nil, nil, fmt.Errorf("chain: module %q: unknown kind %q (known: %v)", mc.Name, mc.Kind, sortedKinds())
		}
		if len(mc.Levels) == 0 {
			return nil, nil, nil, fmt.Errorf("chain: module %q grants no levels", mc.Name)
		}
		switch mc.Remember {
		case "", RememberNone, RememberSession, RememberPersistent:
		default:
			return nil, nil, nil, fmt.Errorf("chain: module %q: remember must be none, session or persistent, not %q", mc.Name, mc.Remember)
		}
		m, ferr := k.factory(deps, mc.Settings)
		if ferr != nil {
			return nil, nil, nil, fmt.Errorf("chain: module %q: %w", mc.Name, ferr)
		}
		all[mc.Name] = &node{ModuleConfig: mc, mod: m, amr: k.amr}
	}
	for _, mc := range cfg.Modules {
		n := all[mc.Name]
		if len(mc.After) == 0 {
			if start != nil {
				return nil, nil, nil, fmt.Errorf("chain: two start modules, %q and %q (give one of them `after`)", start.Name, mc.Name)
			}
			start = n
			continue
		}
		for _, a := range mc.After {
			p, ok := all[a]
			if !ok {
				return nil, nil, nil, fmt.Errorf("chain: module %q comes after unknown module %q", mc.Name, a)
			}
			p.next = append(p.next, n)
		}
	}
	if start == nil {
		return nil, nil, nil, fmt.Errorf("chain: no start module (every module has `after`)")
	}
	// Every module must be reachable from the start, and the tree must
	// have no cycle.
	ranks = map[string]int{}
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
	if err := walk(start, nil); err != nil {
		return nil, nil, nil, err
	}
	for _, mc := range cfg.Modules {
		if !seen[mc.Name] {
			return nil, nil, nil, fmt.Errorf("chain: module %q is never reached from the start module %q", mc.Name, start.Name)
		}
	}
	return start, all, ranks, nil
}

func sortedKinds() []string {
	k := Kinds()
	slices.Sort(k)
	return k
}
