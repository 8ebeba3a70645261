package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gatehouse-idp/gatehouse/users"
)

// ModuleAction is one admin command of one module instance.
type ModuleAction struct {
	Module string `json:"module"`
	Kind   string `json:"kind"`
	Action
}

// ActionResult is what running a module action did.
type ActionResult struct {
	// Message is the module's line for the administrator.
	Message string `json:"message"`
	// DevicesForgotten counts the trusted browsers forgotten with it.
	DevicesForgotten int `json:"devices_forgotten"`
}

// ErrNoAction: no module of the chain has that name and action.
var ErrNoAction = errors.New("chain: no such module action")

// Actions lists the admin commands of every module of the chain (those
// of disabled modules too: an administrator may need to reset a factor
// while its module is off), in configuration order.
func (e *Engine) Actions() []ModuleAction {
	var out []ModuleAction
	for _, n := range e.list {
		if aa, ok := n.mod.(AdminActions); ok {
			for _, act := range aa.Actions() {
				out = append(out, ModuleAction{Module: n.Name, Kind: n.Kind, Action: act})
			}
		}
	}
	return out
}

// ModulesOfKind names the modules of kind k, in configuration order.
func (e *Engine) ModulesOfKind(k string) []string {
	var out []string
	for _, n := range e.list {
		if n.Kind == k {
			out = append(out, n.Name)
		}
	}
	return out
}

// Act runs a module's admin command on user u: ErrNoAction when the
// module has no such command.
func (e *Engine) Act(ctx context.Context, module, action string, u users.User) (ActionResult, error) {
	n, ok := e.nodes[module]
	if !ok {
		return ActionResult{}, fmt.Errorf("%w: no module %q", ErrNoAction, module)
	}
	aa, ok := n.mod.(AdminActions)
	if !ok {
		return ActionResult{}, fmt.Errorf("%w: module %q has no actions", ErrNoAction, module)
	}
	i := slices.IndexFunc(aa.Actions(), func(a Action) bool { return a.Name == action })
	if i < 0 {
		return ActionResult{}, fmt.Errorf("%w: module %q has no action %q", ErrNoAction, module, action)
	}
	msg, err := aa.Act(ctx, action, u)
	if err != nil {
		return ActionResult{}, err
	}
	res := ActionResult{Message: msg}
	if aa.Actions()[i].ForgetDevices {
		if res.DevicesForgotten, err = Forget(ctx, e.opt.Store, u.Subject); err != nil {
			return res, err
		}
	}
	return res, nil
}
