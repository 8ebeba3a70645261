package oidc_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/chain"
)

// Each OIDC preset signs in against its stand-in (issuer overridden, as
// for a self-hosted GitLab), labelled with the provider's name.
func TestOIDCPresets(t *testing.T) {
	for kind, label := range map[string]string{"google": "Google", "gitlab": "GitLab", "linkedin": "LinkedIn", "microsoft": "Microsoft"} {
		t.Run(kind, func(t *testing.T) {
			v := newEnv(t, map[string]any{"kind": kind, "accounts": "create", "label": ""})
			b := v.browser()
			_, page := v.get(b, v.srv.URL+"/start")
			if _, page = v.open(b, page, "Corp"); !strings.Contains(page, "Continue with "+label) {
				t.Fatalf("button:\n%s", page)
			}
			if _, body := v.viaCorp(b, "", map[string]any{"sub": "p-1", "email": "p@corp.example", "email_verified": true}); !strings.HasPrefix(body, "DONE ") {
				t.Fatalf("sign-in: %s", body)
			}
		})
	}
}

// Entra ID's email claim is not verified (anyone may set it on their
// account in some tenants): a microsoft module counts an address as
// verified only with xms_edov, so email_verified alone names no
// account here.
func TestMicrosoftEmailNeedsDomainOwnerVerified(t *testing.T) {
	v := newEnv(t, map[string]any{"kind": "microsoft", "accounts": "create"})
	ctx := context.Background()
	b := v.browser()
	v.viaCorp(b, "", map[string]any{"sub": "ms-1", "email": "alice@example.com", "email_verified": true, "preferred_username": "mallory@tenant.example"})
	u, err := v.users.LookupRemote(ctx, v.op.URL, "ms-1")
	if err != nil || u.Subject == v.alice.Subject || u.Email != "" {
		t.Fatalf("unverified Entra address: %+v %v", u, err)
	}
	b = v.browser()
	st, page := v.viaCorp(b, "", map[string]any{"sub": "ms-2", "email": "alice@example.com", "xms_edov": true})
	if !strings.Contains(alert(page), "already has the address alice@example.com") {
		t.Fatalf("xms_edov address: %d %q", st, alert(page))
	}
}

func TestPresetSettings(t *testing.T) {
	for _, tc := range []struct {
		kind, settings, want string
	}{
		{"microsoft", `{"client_id": "c"}`, "tenant (the directory's id, a GUID) is required"},
		{"microsoft", `{"client_id": "c", "tenant": "common"}`, "tenant (the directory's id"},
		{"microsoft", `{"client_id": "c", "tenant": "0b5e1c2d-1111-2222-3333-444455556666"}`, ""},
		{"google", `{}`, "client_id is required"},
		{"google", `{"client_id": "c"}`, ""},
		{"gitlab", `{"client_id": "c", "issuer": "http://gitlab.corp.example"}`, "must be https"},
		{"oidc", `{"client_id": "c", "issuer": "https://a.example", "tenant": "x"}`, "tenant is a setting of kind microsoft"},
	} {
		err := chain.CheckSettings(tc.kind, json.RawMessage(tc.settings))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %s: %v, want %q", tc.kind, tc.settings, err, tc.want)
		}
	}
}

// The chooser shows each provider as its button: its name and the mark
// the stylesheet draws.
func TestChooserButtons(t *testing.T) {
	for kind, want := range map[string]string{
		"oidc":     `<li class="provider mark-oidc"><a class="button" href="[^"]*module=Corp">Corp IdP</a>`,
		"google":   `<li class="provider mark-google"><a class="button" href="[^"]*module=Corp">Google</a>`,
		"linkedin": `<li class="provider mark-linkedin"><a class="button" href="[^"]*module=Corp">LinkedIn</a>`,
	} {
		settings := map[string]any{"kind": kind}
		if kind != "oidc" {
			settings["label"] = ""
		}
		v := newEnv(t, settings)
		_, page := v.get(v.browser(), v.srv.URL+"/start")
		if !regexp.MustCompile(want).MatchString(page) {
			t.Fatalf("%s: no %s in\n%s", kind, want, page)
		}
	}
	v, _ := socialEnv(t, "github", nil)
	if _, page := v.get(v.browser(), v.srv.URL+"/start"); !strings.Contains(page, `<li class="provider mark-github"><a class="button"`) {
		t.Fatalf("github:\n%s", page)
	}
}
