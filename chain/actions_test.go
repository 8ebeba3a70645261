package chain_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	_ "github.com/gatehouse-idp/gatehouse/chain/totp"
)

// Module actions are listed and run without knowing the kind; one that
// voids trusted devices forgets them.
func TestAdminActions(t *testing.T) {
	d := newDeps(t)
	e := d.engine(t, chain.Config{Modules: []chain.ModuleConfig{
		mod("Password", "password", []string{"1"}),
		{Name: "Authenticator", Kind: "totp", Levels: []string{"2"}, After: []string{"Password"}, Disabled: true},
	}})
	acts := e.Actions()
	if len(acts) != 1 || acts[0].Module != "Authenticator" || acts[0].Kind != "totp" || acts[0].Name != "reset" || !acts[0].ForgetDevices {
		t.Fatalf("actions %+v", acts)
	}
	if got := e.ModulesOfKind("totp"); len(got) != 1 || got[0] != "Authenticator" {
		t.Fatalf("modules of kind totp: %v", got)
	}
	ctx := context.Background()
	// A trusted browser, as remember writes it.
	sub := d.alice.Subject
	d.st.Set(ctx, "remember:"+sub+":Authenticator:dev1", []byte(`{}`), 0)
	d.st.SetAdd(ctx, "remember-user:"+sub, "Authenticator:dev1")
	res, err := e.Act(ctx, "Authenticator", "reset", d.alice)
	if err != nil || res.DevicesForgotten != 1 || res.Message != "TOTP of alice removed" {
		t.Fatalf("reset: %+v %v", res, err)
	}
	if _, err := d.st.Get(ctx, "remember:"+sub+":Authenticator:dev1"); err == nil {
		t.Fatal("trusted browser not forgotten")
	}
	for _, c := range [][2]string{{"Nope", "reset"}, {"Password", "reset"}, {"Authenticator", "explode"}} {
		if _, err := e.Act(ctx, c[0], c[1], d.alice); !errors.Is(err, chain.ErrNoAction) {
			t.Errorf("%v: %v", c, err)
		}
	}
}
