package sets

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-idp/gatehouse/audit"
)

// Person is what the user directory knows of an account.
type Person struct {
	Subject, Username, Email string
	Disabled                 bool
	// Claims are its profile claims (name, email, groups…), sent with
	// user_created and user_changed.
	Claims map[string]any
}

// Lookup finds an account by subject, or by username when subject is
// empty; false when there is none (a deleted account).
type Lookup func(ctx context.Context, subject, username string) (Person, bool)

// occurrence is one audit event as a security event: its kind, type URI
// and payload, and whom it is about.
type occurrence struct {
	kind, typ string
	payload   map[string]any
	// session: the subject is the session sid of person (complex
	// subject) rather than the account.
	session bool
	sid     string
}

// classify finds the kind of e without looking anything up: "" for the
// events that are not delivered. Admin actions are named by their path.
func classify(e audit.Event) string {
	switch e.Event {
	case audit.LoginSucceeded:
		return Login
	case audit.SessionEnded:
		return Logout
	case audit.AccountCreated:
		return UserCreated
	case audit.AccountActivated:
		return UserEnabled
	case audit.PasswordChanged, audit.FactorEnrolled, audit.FactorReset, audit.CredentialAdded, audit.CredentialRemoved:
		return CredentialChanged
	case audit.PasswordReset:
		if e.Reason == "completed" {
			return CredentialChanged
		}
	case audit.AdminAction:
		if !strings.HasPrefix(e.Target, "user:") || strings.Contains(e.Reason, "(refused") {
			return ""
		}
		switch strings.TrimPrefix(e.Reason, "POST ") {
		case "/gatehouse/users", audit.ConsoleUserCreated:
			return UserCreated
		case "/gatehouse/users/groups", "/gatehouse/users/profile", audit.ConsoleUserChanged:
			return UserChanged
		case "/gatehouse/users/disabled", audit.ConsoleUserDisabled, audit.ConsoleUserEnabled:
			return UserDisabled // or UserEnabled: the account says which
		case "/gatehouse/users/delete", audit.ConsoleUserDeleted:
			return UserDeleted
		}
	}
	return ""
}

// describe makes the security event of e, about p (found, or only
// e's subject when the account is gone).
func (s *Service) describe(kind string, e audit.Event, p Person, at time.Time) occurrence {
	ts := at.Unix()
	initiator := "user"
	if e.Event == audit.AdminAction || e.Admin != "" {
		initiator = "admin"
	}
	switch kind {
	case Login:
		pl := map[string]any{"event_timestamp": ts}
		if len(e.AMR) > 0 {
			pl["amr"] = e.AMR
		}
		if e.ACR != "" {
			pl["acr"] = e.ACR
		}
		return occurrence{kind: kind, typ: CAEPSessionEstablished, payload: pl, session: e.SID != "", sid: e.SID}
	case Logout:
		pl := map[string]any{"event_timestamp": ts, "initiating_entity": logoutInitiator(e.Reason)}
		if e.Reason != "" {
			pl["reason_admin"] = map[string]string{"en": e.Reason}
		}
		return occurrence{kind: kind, typ: CAEPSessionRevoked, payload: pl, session: e.SID != "", sid: e.SID}
	case UserCreated:
		pl := map[string]any{"event_timestamp": ts, "initiating_entity": initiator}
		if len(p.Claims) > 0 {
			pl["claims"] = p.Claims
		}
		return occurrence{kind: kind, typ: s.cfg.Issuer + AccountCreatedPath, payload: pl}
	case UserChanged:
		claims := p.Claims
		if claims == nil {
			claims = map[string]any{}
		}
		return occurrence{kind: kind, typ: CAEPTokenClaimsChange,
			payload: map[string]any{"event_timestamp": ts, "initiating_entity": initiator, "claims": claims}}
	case UserDisabled:
		return occurrence{kind: kind, typ: RISCAccountDisabled, payload: map[string]any{}}
	case UserEnabled:
		return occurrence{kind: kind, typ: RISCAccountEnabled, payload: map[string]any{}}
	case UserDeleted:
		return occurrence{kind: kind, typ: RISCAccountPurged, payload: map[string]any{}}
	}
	credential, change := credentialType(e), "update"
	switch e.Event {
	case audit.FactorEnrolled, audit.CredentialAdded:
		if credential != "password" { // a password set on the account page replaces the old one
			change = "create"
		}
	case audit.FactorReset, audit.CredentialRemoved:
		change = "delete"
	}
	return occurrence{kind: CredentialChanged, typ: CAEPCredentialChange, payload: map[string]any{
		"event_timestamp": ts, "initiating_entity": initiator, "change_type": change, "credential_type": credential,
	}}
}

// credentialType names the credential in CAEP's words where one fits,
// else by the chain module's name.
func credentialType(e audit.Event) string {
	switch {
	case e.Event == audit.PasswordChanged || e.Event == audit.PasswordReset || e.Module == "password":
		return "password"
	case e.Module == "totp":
		return "app"
	case e.Module == "":
		return "unknown"
	}
	return e.Module
}

// logoutInitiator says who ended a session (CAEP initiating_entity) from
// the logout reason.
func logoutInitiator(reason string) string {
	switch reason {
	case "admin", "user_disabled", "user_deleted":
		return "admin"
	case "expired", "too_many_sessions":
		return "policy"
	}
	return "user"
}

// subjectID is the sub_id of a SET (RFC 9493): the account as iss_sub,
// with its email as an alias where known; for session events a complex
// subject of the account and the session.
func (s *Service) subjectID(o occurrence, p Person) map[string]any {
	user := map[string]any{"format": "iss_sub", "iss": s.cfg.Issuer, "sub": p.Subject}
	if o.session {
		return map[string]any{"format": "complex", "user": user,
			"session": map[string]any{"format": "opaque", "id": o.sid}}
	}
	if p.Email != "" {
		return map[string]any{"format": "aliases", "identifiers": []any{user, map[string]any{"format": "email", "email": p.Email}}}
	}
	return user
}
