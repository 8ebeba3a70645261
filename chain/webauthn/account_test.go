package webauthn_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/users"
)

// The account page: one part for the user's keys (shown by the first
// webauthn instance only: keys are the user's), "Add a passkey" runs a
// registration for the signed-in user whatever the instance, the new
// key signs in passwordless, and removing one works except the last way
// in of a user without a password.
func TestAccountPart(t *testing.T) {
	v := newEnv(t, withStart(`{}`)...)
	ctx := context.Background()
	b := v.browser()
	// Signed in with the password (level 1: no key asked).
	if got := b.password("alice", ""); got != v.done(v.alice, "pwd") {
		t.Fatalf("password: %q", got)
	}
	secs, err := v.e.AccountSections(ctx, v.alice)
	if err != nil || len(secs) != 1 || secs[0].Module != "Key" || secs[0].Add != "Add a passkey" || len(secs[0].Items) != 0 {
		t.Fatalf("sections %+v %v", secs, err)
	}
	// The second instance has no part: nothing to add there.
	if _, page, _ := b.get("/add?module=Passkey"); !strings.Contains(page, "no such module") {
		t.Fatalf("add at the second instance:\n%s", page)
	}
	k1, k2 := newSoftKey(t, v.rpID, v.issuer), newSoftKey(t, v.rpID, v.issuer)
	_, page, _ := b.get("/add?module=Key")
	if !strings.Contains(page, "Add a passkey") || !strings.Contains(page, `id="f-keyname"`) {
		t.Fatalf("add page:\n%s", page)
	}
	st, begun, fin := b.ceremony(page, "Key", k1, nil, "Phone")
	if st != http.StatusOK || begun.Data.Kind != "create" {
		t.Fatalf("add: %d %+v %+v", st, begun, fin)
	}
	b.get(fin.Next)
	if got := b.done(); got != v.done(v.alice, "pwd") {
		t.Fatalf("the session gained something: %q", got)
	}
	secs, _ = v.e.AccountSections(ctx, v.alice)
	if len(secs) != 1 || len(secs[0].Items) != 1 || secs[0].Items[0].Label != "Phone" || secs[0].Items[0].ID != enc(k1.id) ||
		!strings.Contains(secs[0].Items[0].Detail, "added ") {
		t.Fatalf("sections %+v", secs)
	}
	// The new key signs in passwordless.
	p := v.browser()
	_, page, _ = p.get("/start")
	if st, _, fin := p.ceremony(page, "Passkey", k1, nil, ""); st != http.StatusOK {
		t.Fatalf("passwordless with the added key: %d %+v", st, fin)
	}

	// A second key from the account page (the first is excluded at
	// registration), then removals.
	_, page, _ = b.get("/add?module=Key")
	st, begun, fin = b.ceremony(page, "Key", k2, nil, "")
	if ex, _ := begun.Data.Options["excludeCredentials"].([]any); st != http.StatusOK || len(ex) != 1 {
		t.Fatalf("second key: %d %+v %+v", st, begun.Data.Options, fin)
	}
	if _, err := v.users.Update(ctx, v.alice.Subject, func(u *users.User) error { u.PasswordHash = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	u, _ := v.users.Get(ctx, v.alice.Subject)
	if err := v.e.RemoveAccountItem(ctx, u, "Key", enc(k1.id)); err != nil {
		t.Fatal(err)
	}
	var refused chain.RemoveRefused
	if err := v.e.RemoveAccountItem(ctx, u, "Key", enc(k2.id)); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "only way to sign in") {
		t.Fatalf("removing the last way in: %v", err)
	}
	if err := v.e.RemoveAccountItem(ctx, u, "Key", enc(k1.id)); !errors.As(err, &refused) {
		t.Fatalf("removing a removed key: %v", err)
	}
	if v.trail.count(audit.PasskeyRemoved, "by the user") != 1 {
		t.Fatal("removal not audited")
	}
	// The removed key no longer signs in.
	p = v.browser()
	_, page, _ = p.get("/start")
	if st, _, _ := p.ceremony(page, "Passkey", k1, nil, ""); st != http.StatusUnauthorized {
		t.Fatalf("removed key: %d", st)
	}
}

// A deleted user's keys go with them: the engine's ForgetUser (every
// instance) removes them and their indexes, and the key signs in no
// one.
func TestForgetUser(t *testing.T) {
	v := newEnv(t, withStart(`{}`)...)
	k := newSoftKey(t, v.rpID, v.issuer)
	v.register("alice", k)
	ctx := context.Background()
	if err := v.e.ForgetUser(ctx, v.alice.Subject); err != nil {
		t.Fatal(err)
	}
	if out, _ := v.e.Act(ctx, "Key", "list", v.alice); out.Message != "alice has no passkeys" {
		t.Fatalf("after forgetting: %s", out.Message)
	}
	if v.trail.count(audit.PasskeyRemoved, "user deleted") != 1 {
		t.Fatal("not audited once")
	}
	for _, key := range []string{"kind:webauthn:user:" + v.alice.Subject, "kind:webauthn:handle:" + enc(k.handle), "kind:webauthn:cred:" + enc(k.id)} {
		if _, err := v.st.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s left behind (%v)", key, err)
		}
	}
	p := v.browser()
	_, page, _ := p.get("/start")
	if st, _, _ := p.ceremony(page, "Passkey", k, nil, ""); st != http.StatusUnauthorized {
		t.Fatalf("a deleted user's key: %d", st)
	}
}
