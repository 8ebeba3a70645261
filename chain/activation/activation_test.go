package activation

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
	"github.com/gatehouse-idp/gatehouse/store"
	"github.com/gatehouse-idp/gatehouse/store/embedded"
	"github.com/gatehouse-idp/gatehouse/users"
)

func TestMasked(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com": "a•••@example.com", "Ébène@example.fr": "É•••@example.fr", "x@y": "x•••@y", "@y": "your address", "nope": "your address",
	} {
		if got := masked(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for ttl, ok := range map[time.Duration]bool{0: true, time.Minute: true, 7 * 24 * time.Hour: true, 59 * time.Second: false, 8 * 24 * time.Hour: false} {
		s := Settings{LinkTTL: chain.Duration(ttl)}
		if err := s.Validate(); (err == nil) != ok {
			t.Errorf("link_ttl %v: %v", ttl, err)
		}
	}
}

// Redeem activates once, says so, and tells of an account removed or
// one whose address another account took meanwhile.
func TestRedeem(t *testing.T) {
	st, err := embedded.Open(filepath.Join(t.TempDir(), "t.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := users.New(st, nil)
	ctx := context.Background()
	m, err := New(chain.Deps{Name: "Activate", Users: dir, Store: store.WithPrefix(st, "mod:Activate:"), Mailer: &chaintest.Outbox{}}, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	rd := m.(*Module)
	u, _ := dir.Create(ctx, users.User{Username: "nia", Email: "nia@example.com", Inactive: true}, "")
	if title, _, err := rd.Redeem(ctx, u.Subject); err != nil || title != "Your account is active" {
		t.Fatalf("%q %v", title, err)
	}
	if title, _, err := rd.Redeem(ctx, u.Subject); err != nil || title != "Your account is already active" {
		t.Fatalf("again: %q %v", title, err)
	}
	v, _ := dir.Create(ctx, users.User{Username: "nia2", Email: "nia@example.com", Inactive: true}, "")
	if title, text, err := rd.Redeem(ctx, v.Subject); err != nil || title != "This account cannot be activated" || !strings.Contains(text, "belongs to another account") {
		t.Fatalf("taken: %q %v", title, err)
	}
	if got, _ := dir.Get(ctx, v.Subject); !got.Inactive {
		t.Fatal("activated onto a taken address")
	}
	if title, _, err := rd.Redeem(ctx, "no-such-subject"); err != nil || title != "This account no longer exists" {
		t.Fatalf("removed: %q %v", title, err)
	}
	if _, _, err := rd.Redeem(ctx, ""); err == nil {
		t.Fatal("a link for nobody redeemed")
	}
}
