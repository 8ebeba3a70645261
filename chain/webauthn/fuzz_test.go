package webauthn

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// FuzzFinish: any answer of a page — to an assertion of a user's key,
// a passwordless assertion or a registration — is refused or passes,
// never panics, and passes only with an identity the engine accepts
// (it never does for bytes not signed by a registered key: there is
// none here).
func FuzzFinish(f *testing.F) {
	st := memstore.New()
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	dir := users.New(st, nil)
	alice, err := dir.Create(ctx, users.User{Username: "alice"}, "violet tractor wanders 93 laps")
	if err != nil {
		f.Fatal(err)
	}
	build := func(after []string) *Module {
		d := chain.Deps{Name: "Key", KindStore: store.WithPrefix(st, "kind:webauthn:"), Users: dir, Issuer: "https://idp.example",
			Chain: []chain.ModuleConfig{{Name: "Key", Kind: "webauthn", After: after}}}
		m, err := New(d, Settings{})
		if err != nil {
			f.Fatal(err)
		}
		return m.(*Module)
	}
	second, start := build([]string{"Password"}), build(nil)
	keeps := map[*Module][]byte{}
	for _, m := range []*Module{second, start} {
		_, keep, err := m.Begin(ctx, &chain.Attempt{ID: "a", Subject: alice.Subject}, nil)
		if err != nil {
			f.Fatal(err)
		}
		keeps[m] = keep
	}
	f.Add([]byte(`{"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}}`), false)
	f.Add([]byte(`{"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AA", "userHandle": "AA"}}}`), true)
	f.Add([]byte(`{"credential": null, "name": "\u0000"}`), false)
	f.Fuzz(func(t *testing.T, in []byte, passwordless bool) {
		m := second
		if passwordless {
			m = start
		}
		id, err := m.Finish(ctx, &chain.Attempt{ID: "a", Subject: alice.Subject}, json.RawMessage(in), keeps[m])
		if err == nil || !id.IsZero() {
			t.Fatalf("%q passed: %+v %v", in, id, err)
		}
	})
}

// FuzzBegin: any first request of a page is answered or refused.
func FuzzBegin(f *testing.F) {
	st := memstore.New()
	f.Cleanup(func() { st.Close() })
	d := chain.Deps{Name: "Passkey", KindStore: store.WithPrefix(st, "kind:webauthn:"), Users: users.New(st, nil), Issuer: "https://idp.example",
		Chain: []chain.ModuleConfig{{Name: "Passkey", Kind: "webauthn"}}}
	m, err := New(d, Settings{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"conditional": true}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, keep, err := m.(*Module).Begin(context.Background(), &chain.Attempt{ID: "a"}, json.RawMessage(in))
		if err == nil && (out == nil || len(keep) == 0) {
			t.Fatalf("%q: answered nothing", in)
		}
	})
}
