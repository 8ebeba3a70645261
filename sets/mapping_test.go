package sets

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
)

// TestMapping records audit events and checks the SET each one queues
// (or that none is queued): kind, event type URI, payload and subject.
func TestMapping(t *testing.T) {
	admin := audit.Event{Event: audit.AdminAction, Admin: "127.0.0.1:5000", Target: "user:alice", Subject: alice.Subject}
	console := audit.Event{Event: audit.AdminAction, Admin: "root", Target: "user:alice", Subject: alice.Subject}
	with := func(e audit.Event, reason string) audit.Event { e.Reason = reason; return e }
	cases := []struct {
		name     string
		ev       audit.Event
		disabled bool
		typ      string // "" when no SET is queued
		payload  map[string]any
		subject  string // the sub_id format
	}{
		{"login", audit.Event{Event: audit.LoginSucceeded, User: "alice", Subject: alice.Subject, SID: "s1", AMR: []string{"pwd", "otp"}},
			false, CAEPSessionEstablished, map[string]any{"amr": []any{"pwd", "otp"}}, "complex"},
		{"logout by the user", audit.Event{Event: audit.SessionEnded, Subject: alice.Subject, SID: "s1", Reason: "client_logout"},
			false, CAEPSessionRevoked, map[string]any{"initiating_entity": "user", "reason_admin": map[string]any{"en": "client_logout"}}, "complex"},
		{"logout by expiry", audit.Event{Event: audit.SessionEnded, Subject: alice.Subject, SID: "s1", Reason: "expired"},
			false, CAEPSessionRevoked, map[string]any{"initiating_entity": "policy"}, "complex"},
		{"logout of a disabled user", audit.Event{Event: audit.SessionEnded, Subject: alice.Subject, SID: "s1", Reason: "user_disabled"},
			false, CAEPSessionRevoked, map[string]any{"initiating_entity": "admin"}, "complex"},
		{"sign-up", audit.Event{Event: audit.AccountCreated, User: "alice", Subject: alice.Subject, Reason: "active"},
			false, issuer + AccountCreatedPath, map[string]any{"initiating_entity": "user", "claims": map[string]any{"preferred_username": "alice", "groups": []any{"staff"}}}, "aliases"},
		{"admin creates", with(admin, "POST /gatehouse/users"), false, issuer + AccountCreatedPath, map[string]any{"initiating_entity": "admin"}, "aliases"},
		{"admin groups", with(admin, "POST /gatehouse/users/groups"), false, CAEPTokenClaimsChange,
			map[string]any{"claims": map[string]any{"preferred_username": "alice", "groups": []any{"staff"}}}, "aliases"},
		{"admin disables", with(admin, "POST /gatehouse/users/disabled"), true, RISCAccountDisabled, map[string]any{}, "aliases"},
		{"admin enables", with(admin, "POST /gatehouse/users/disabled"), false, RISCAccountEnabled, map[string]any{}, "aliases"},
		{"console creates", with(console, audit.ConsoleUserCreated), false, issuer + AccountCreatedPath, map[string]any{"initiating_entity": "admin"}, "aliases"},
		{"console groups", with(console, audit.ConsoleUserChanged), false, CAEPTokenClaimsChange,
			map[string]any{"claims": map[string]any{"preferred_username": "alice", "groups": []any{"staff"}}}, "aliases"},
		{"console disables", with(console, audit.ConsoleUserDisabled), true, RISCAccountDisabled, map[string]any{}, "aliases"},
		{"console enables", with(console, audit.ConsoleUserEnabled), false, RISCAccountEnabled, map[string]any{}, "aliases"},
		{"console deletes", with(console, audit.ConsoleUserDeleted), false, RISCAccountPurged, map[string]any{}, "iss_sub"},
		{"refused console action", with(console, audit.ConsoleUserDisabled+" (refused: no user)"), true, "", nil, ""},
		{"activation", audit.Event{Event: audit.AccountActivated, Subject: alice.Subject}, false, RISCAccountEnabled, map[string]any{}, "aliases"},
		{"admin deletes", with(admin, "POST /gatehouse/users/delete"), false, RISCAccountPurged, map[string]any{}, "iss_sub"},
		{"admin password", audit.Event{Event: audit.PasswordChanged, User: "alice", Subject: alice.Subject, Admin: "127.0.0.1:1"}, false, CAEPCredentialChange,
			map[string]any{"credential_type": "password", "change_type": "update", "initiating_entity": "admin"}, "aliases"},
		{"password reset", audit.Event{Event: audit.PasswordReset, Subject: alice.Subject, Reason: "completed", Module: "reset"}, false, CAEPCredentialChange,
			map[string]any{"credential_type": "password", "change_type": "update", "initiating_entity": "user"}, "aliases"},
		{"totp enrolled", audit.Event{Event: audit.FactorEnrolled, Subject: alice.Subject, Module: "totp"}, false, CAEPCredentialChange,
			map[string]any{"credential_type": "app", "change_type": "create"}, "aliases"},
		{"totp reset", audit.Event{Event: audit.FactorReset, Subject: alice.Subject, Module: "totp"}, false, CAEPCredentialChange,
			map[string]any{"change_type": "delete"}, "aliases"},
		{"password set on the account page", audit.Event{Event: audit.CredentialAdded, Subject: alice.Subject, Module: "password", SID: "s1"}, false, CAEPCredentialChange,
			map[string]any{"credential_type": "password", "change_type": "update", "initiating_entity": "user"}, "aliases"},
		{"passkey removed", audit.Event{Event: audit.CredentialRemoved, Subject: alice.Subject, Module: "passkey"}, false, CAEPCredentialChange,
			map[string]any{"credential_type": "passkey", "change_type": "delete"}, "aliases"},
		// What is not delivered.
		{"failed login", audit.Event{Event: audit.LoginFailed, Attempted: "alice"}, false, "", nil, ""},
		{"reset requested", audit.Event{Event: audit.PasswordReset, Subject: alice.Subject, Reason: "requested"}, false, "", nil, ""},
		{"refused admin action", with(admin, "POST /gatehouse/users/disabled (refused: no user)"), true, "", nil, ""},
		{"admin action on a client", audit.Event{Event: audit.AdminAction, Target: "client:x", Reason: "POST /gatehouse/clients/delete"}, false, "", nil, ""},
		{"admin password line", with(admin, "POST /gatehouse/users/password"), false, "", nil, ""},
		{"step-up", audit.Event{Event: audit.StepUp, Subject: alice.Subject, SID: "s1"}, false, "", nil, ""},
		{"our own given-up line", audit.Event{Event: audit.SETGivenUp, Target: "https://r.example"}, false, "", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newMemEnv(t, []Receiver{{URL: "https://hr.example/sets"}}, func(c *Config) {
				lookup := c.Lookup
				c.Lookup = func(ctx context.Context, sub, username string) (Person, bool) {
					p, ok := lookup(ctx, sub, username)
					if tc.name == "admin deletes" || tc.name == "console deletes" {
						return Person{}, false // gone
					}
					p.Disabled = tc.disabled
					return p, ok
				}
			})
			e.log.Record(context.Background(), tc.ev)
			q := e.queued(t)
			if tc.typ == "" {
				if len(q) != 0 {
					t.Fatalf("queued %d SETs, want none: %s", len(q), q[0].Claims)
				}
				return
			}
			if len(q) != 1 {
				t.Fatalf("queued %d SETs, want 1", len(q))
			}
			var c map[string]any
			if err := json.Unmarshal(q[0].Claims, &c); err != nil {
				t.Fatal(err)
			}
			if c["iss"] != issuer || c["aud"] != "https://hr.example" || c["jti"] != q[0].ID || c["iat"] == nil {
				t.Fatalf("claims %v", c)
			}
			for _, banned := range []string{"sub", "exp", "nonce", "sid"} {
				if _, ok := c[banned]; ok {
					t.Fatalf("a SET carries %s (it could pass for another kind of token): %v", banned, c)
				}
			}
			events := c["events"].(map[string]any)
			pl, ok := events[tc.typ].(map[string]any)
			if !ok || len(events) != 1 {
				t.Fatalf("events %v, want one %s", events, tc.typ)
			}
			for k, want := range tc.payload {
				got, _ := json.Marshal(pl[k])
				w, _ := json.Marshal(want)
				if string(got) != string(w) {
					t.Errorf("payload %s = %s, want %s", k, got, w)
				}
			}
			sub := c["sub_id"].(map[string]any)
			if sub["format"] != tc.subject {
				t.Fatalf("sub_id %v, want format %s", sub, tc.subject)
			}
			raw, _ := json.Marshal(sub)
			if !strings.Contains(string(raw), `"sub":"sub-alice"`) {
				t.Fatalf("sub_id %s does not name the account", raw)
			}
			if tc.subject == "complex" && !strings.Contains(string(raw), `"session":{"format":"opaque","id":"s1"}`) {
				t.Fatalf("sub_id %s does not name the session", raw)
			}
			if tc.subject == "aliases" && tc.name != "admin deletes" && !strings.Contains(string(raw), `{"email":"alice@example.test","format":"email"}`) {
				t.Fatalf("sub_id %s lacks the email", raw)
			}
		})
	}
}

// TestReceiverEvents: a receiver gets only the kinds it lists.
func TestReceiverEvents(t *testing.T) {
	e, _ := newMemEnv(t, []Receiver{
		{URL: "https://hr.example/sets", Events: []string{UserDisabled, UserDeleted}},
		{URL: "https://siem.example/sets", Audience: "siem", Events: []string{Login, Logout}},
	}, nil)
	ctx := context.Background()
	e.log.Record(ctx, audit.Event{Event: audit.LoginSucceeded, Subject: alice.Subject, SID: "s"})
	e.clock.Advance(time.Millisecond)
	e.log.Record(ctx, audit.Event{Event: audit.AdminAction, Target: "user:alice", Subject: alice.Subject, Reason: "POST /gatehouse/users/delete"})
	e.log.Record(ctx, audit.Event{Event: audit.PasswordChanged, Subject: alice.Subject})
	q := e.queued(t)
	if len(q) != 2 || q[0].URL != "https://siem.example/sets" || q[0].Kind != Login || q[1].URL != "https://hr.example/sets" || q[1].Kind != UserDeleted {
		t.Fatalf("queued %+v", q)
	}
	if !strings.Contains(string(q[0].Claims), `"aud":"siem"`) {
		t.Fatalf("audience not used: %s", q[0].Claims)
	}
}

// TestTxn: the events of one transaction share a txn; others have none.
func TestTxn(t *testing.T) {
	e, _ := newMemEnv(t, []Receiver{{URL: "https://hr.example/sets"}}, nil)
	ctx := WithTxn(context.Background())
	e.log.Record(ctx, audit.Event{Event: audit.SessionEnded, Subject: alice.Subject, SID: "s", Reason: "user_deleted"})
	e.clock.Advance(time.Millisecond)
	e.log.Record(ctx, audit.Event{Event: audit.AdminAction, Target: "user:alice", Subject: alice.Subject, Reason: "POST /gatehouse/users/delete"})
	e.clock.Advance(time.Millisecond)
	e.log.Record(context.Background(), audit.Event{Event: audit.LoginSucceeded, Subject: alice.Subject, SID: "t"})
	var txns []any
	for _, d := range e.queued(t) {
		var c map[string]any
		json.Unmarshal(d.Claims, &c)
		txns = append(txns, c["txn"])
	}
	if len(txns) != 3 || txns[0] == nil || txns[0] != txns[1] || txns[2] != nil {
		t.Fatalf("txns %v", txns)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		r    Receiver
		want string
	}{
		{Receiver{URL: "https://hr.example/sets"}, ""},
		{Receiver{URL: "http://127.0.0.1:9/sets", PrivateNetworks: true}, ""},
		{Receiver{URL: "https://10.1.2.3/sets", PrivateNetworks: true, Events: []string{Login}}, ""},
		{Receiver{URL: "/sets"}, "not an absolute URL"},
		{Receiver{URL: "ftp://hr.example/sets"}, "scheme must be https"},
		{Receiver{URL: "http://hr.example/sets"}, "plain http"},
		{Receiver{URL: "https://u:p@hr.example/sets"}, "credentials in the URL"},
		{Receiver{URL: "https://hr.example/sets#x"}, "fragment"},
		{Receiver{URL: "http://localhost:8080/sets"}, "on this machine: add private_networks"},
		{Receiver{URL: "https://10.1.2.3/sets"}, "not a public internet address"},
		{Receiver{URL: "https://[::ffff:192.168.1.1]/sets"}, "not a public internet address"},
		{Receiver{URL: "https://169.254.169.254/latest"}, "not a public internet address"},
		{Receiver{URL: "https://hr.example/sets", Events: []string{"login", "logon"}}, `unknown event "logon"`},
		{Receiver{URL: "https://hr.example/sets", Events: []string{"login", "login"}}, "listed twice"},
		{Receiver{URL: "https://hr.example/sets", Authorization: "Bearer x\r\nX-Evil: 1"}, "one line"},
	}
	for _, tc := range cases {
		err := tc.r.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: error %v, want %q", tc.r, err, tc.want)
		}
	}
	if err := ValidateAll([]Receiver{{URL: "https://a.example/s"}, {URL: "https://a.example/s"}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate receiver: %v", err)
	}
}

// TestWithoutLookup: without a directory a SET names the subject only,
// and a disable is not mistaken for an enable.
func TestWithoutLookup(t *testing.T) {
	e, _ := newMemEnv(t, []Receiver{{URL: "https://hr.example/sets"}}, func(c *Config) { c.Lookup = nil })
	e.log.Record(context.Background(), audit.Event{Event: audit.AdminAction, Target: "user:alice", Subject: alice.Subject,
		Reason: "POST /gatehouse/users/disabled"})
	q := e.queued(t)
	if len(q) != 1 || q[0].Kind != UserDisabled ||
		!strings.Contains(string(q[0].Claims), `"sub_id":{"format":"iss_sub","iss":"https://auth.example.test","sub":"sub-alice"}`) {
		t.Fatalf("queued %+v", q)
	}
}
