package oidc_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/users"
)

// On the account page a signed-in user links an identity at the
// provider (whatever its address), which then signs in as them; an
// identity linked to someone else is refused; unlinking keeps one way
// in.
func TestAccountLinkAndUnlink(t *testing.T) {
	v := newEnv(t, map[string]any{"accounts": "link_only"})
	ctx := context.Background()
	b := v.browser()
	_, page := v.get(b, v.srv.URL+"/start")
	if _, body := v.password(b, page, "alice", "alice-pw"); !strings.HasPrefix(body, "DONE "+v.alice.Subject) {
		t.Fatalf("password: %s", body)
	}
	part, err := v.e.AccountSections(ctx, v.alice)
	if err != nil || len(part) != 1 || part[0].Module != "Corp" || part[0].Add != "Link your Corp IdP account" || len(part[0].Items) != 0 {
		t.Fatalf("account part %+v %v", part, err)
	}
	v.op.signIn(map[string]any{"sub": "corp-a", "email": "a.smith@corp.example", "email_verified": true})
	_, page = v.get(b, v.srv.URL+"/add?module=Corp")
	if st, body := v.post(b, v.srv.URL+"/login", chaintest.Form(page)); !strings.HasPrefix(body, "DONE "+v.alice.Subject) {
		t.Fatalf("link: %d %s", st, body)
	}
	alice, _ := v.users.Get(ctx, v.alice.Subject)
	if r, ok := alice.RemoteOf(v.op.URL, "corp-a"); !ok || r.Label != "a.smith@corp.example" || r.Module != "Corp" {
		t.Fatalf("not linked: %+v", alice.Remotes)
	}
	if !strings.Contains(v.trail.String(), `"reason":"the account page"`) {
		t.Fatalf("trail:\n%s", v.trail)
	}
	// It signs in as alice now (link_only).
	if _, body := v.viaCorp(v.browser(), "", map[string]any{"sub": "corp-a"}); !strings.HasPrefix(body, "DONE "+v.alice.Subject) {
		t.Fatalf("linked sign-in: %s", body)
	}

	// Bob cannot add alice's identity to his account.
	bob, _ := v.users.Create(ctx, users.User{Username: "bob"}, "bob-pw")
	bb := v.browser()
	_, page = v.get(bb, v.srv.URL+"/start")
	v.password(bb, page, "bob", "bob-pw")
	_, page = v.get(bb, v.srv.URL+"/add?module=Corp")
	v.op.signIn(map[string]any{"sub": "corp-a"})
	if st, _ := v.post(bb, v.srv.URL+"/login", chaintest.Form(page)); st != http.StatusConflict {
		t.Fatalf("another's identity: %d", st)
	}
	if b2, _ := v.users.Get(ctx, bob.Subject); len(b2.Remotes) != 0 {
		t.Fatalf("bob got %+v", b2.Remotes)
	}

	// Unlink: alice has a password, so it may go.
	parts, _ := v.e.AccountSections(ctx, alice)
	if len(parts[0].Items) != 1 || parts[0].Items[0].ID != "corp-a" || parts[0].Add != "" {
		t.Fatalf("part %+v", parts[0])
	}
	if err := v.e.RemoveAccountItem(ctx, alice, "Corp", "corp-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.users.LookupRemote(ctx, v.op.URL, "corp-a"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("still linked: %v", err)
	}
	if st, _ := v.viaCorp(v.browser(), "", map[string]any{"sub": "corp-a"}); st != http.StatusForbidden {
		t.Fatalf("unlinked identity signed in: %d", st)
	}

	// An account whose only way in is its identity keeps it.
	carol, _ := v.users.Create(ctx, users.User{Username: "carol", Remotes: []users.Remote{{Issuer: v.op.URL, Subject: "corp-c"}}}, "")
	var refused chain.RemoveRefused
	if err := v.e.RemoveAccountItem(ctx, carol, "Corp", "corp-c"); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "only way to sign in") {
		t.Fatalf("last way in removed: %v", err)
	}
	if err := v.e.RemoveAccountItem(ctx, carol, "Corp", "someone-else"); !errors.As(err, &refused) {
		t.Fatalf("foreign id: %v", err)
	}
	if _, err := v.users.LookupRemote(ctx, v.op.URL, "corp-c"); err != nil {
		t.Fatalf("carol lost her way in: %v", err)
	}
}
