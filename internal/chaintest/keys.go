package chaintest

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

func init() {
	chain.Register("test-keys", newKeys)
}

// keys is a stand-in for passkeys: a form that takes a key name. As a
// start module, a known key signs its owner in; in an account attempt
// (chain.Engine.StartAccount) a new key is added to the signed-in user, and a
// key someone has passes as its owner (which the engine refuses). It is
// an AccountModule: the account page lists the user's keys; the last
// one of a user without a password cannot be removed.
type keys struct{ d chain.Deps }

func newKeys(d chain.Deps, _ struct{}) (chain.Module, error) { return &keys{d: d}, nil }

func (m *keys) Prompt(_ context.Context, a *chain.Attempt) (chain.Prompt, error) {
	title := "Sign in with a key"
	if a.Account() {
		title = "Add a key"
	}
	return chain.Prompt{Title: title, Fields: []chain.Field{{Name: "key", Label: "Key", Type: "text"}}}, nil
}

func (m *keys) Verify(ctx context.Context, a *chain.Attempt, form url.Values) (chain.Identity, error) {
	k := form.Get("key")
	if k == "" {
		return chain.Identity{}, chain.Reject("Name a key.")
	}
	owner, err := m.d.Store.Get(ctx, "key:"+k)
	switch {
	case err == nil:
		return chain.Identity{Subject: string(owner), AMR: []string{chain.AMRHardwareKey}}, nil
	case !errors.Is(err, store.ErrNotFound):
		return chain.Identity{}, err
	case !a.Account():
		return chain.Identity{}, chain.Reject("Unknown key.")
	}
	if err := m.d.Store.Create(ctx, "key:"+k, []byte(a.Subject), 0); err != nil {
		return chain.Identity{}, err
	}
	if err := m.d.Store.Update(ctx, "keys:"+a.Subject, 0, func(old []byte) ([]byte, error) {
		var list []string
		if old != nil {
			if err := json.Unmarshal(old, &list); err != nil {
				return nil, err
			}
		}
		return json.Marshal(append(list, k))
	}); err != nil {
		return chain.Identity{}, err
	}
	return chain.Identity{Subject: a.Subject, AMR: []string{chain.AMRHardwareKey}}, nil
}

func (m *keys) list(ctx context.Context, sub string) ([]string, error) {
	b, err := m.d.Store.Get(ctx, "keys:"+sub)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var list []string
	return list, json.Unmarshal(b, &list)
}

func (m *keys) Account(ctx context.Context, u users.User) (chain.AccountPart, error) {
	list, err := m.list(ctx, u.Subject)
	if err != nil {
		return chain.AccountPart{}, err
	}
	part := chain.AccountPart{Title: "Keys", Add: "Add a key"}
	for _, k := range list {
		part.Items = append(part.Items, chain.AccountItem{ID: k, Label: "Key " + k})
	}
	return part, nil
}

func (m *keys) Remove(ctx context.Context, u users.User, id string) error {
	list, err := m.list(ctx, u.Subject)
	if err != nil {
		return err
	}
	if !slices.Contains(list, id) {
		return chain.RemoveRefused{Reason: "You have no such key."}
	}
	if len(list) == 1 && u.PasswordHash == "" {
		return chain.RemoveRefused{Reason: "This is your only way to sign in: add another before removing it."}
	}
	b, err := json.Marshal(slices.DeleteFunc(list, func(k string) bool { return k == id }))
	if err != nil {
		return err
	}
	if err := m.d.Store.Set(ctx, "keys:"+u.Subject, b, 0); err != nil {
		return err
	}
	return m.d.Store.Delete(ctx, "key:"+id)
}

var _ chain.AccountModule = (*keys)(nil)
