package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gatehouse-idp/gatehouse/users"
)

// Scope is a scope, what the consent page says about it, and the claims
// it releases.
type Scope struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Claims      []string `json:"claims,omitempty"`
}

// builtinScopes are OIDC Core §5.4's scopes, groups, offline_access and
// the Authentiq-style aq:* scopes (one claim each, for a finer choice).
var builtinScopes = []Scope{
	{"openid", "Sign you in with your account", nil},
	{"profile", "Your name and profile (name, username, picture, website, language, time zone)", []string{"name", "family_name", "given_name", "middle_name", "nickname",
		"preferred_username", "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"}},
	{"email", "Your email address", []string{"email", "email_verified"}},
	{"phone", "Your phone number", []string{"phone_number", "phone_number_verified"}},
	{"address", "Your postal address", []string{"address"}},
	{"groups", "The groups you belong to", []string{"groups"}},
	{"offline_access", "Keep access while you are not using it (until you withdraw it)", nil},
	{"aq:name", "Your full name", []string{"name", "family_name", "given_name", "middle_name", "nickname"}},
	{"aq:location", "Your location", []string{"aq:location"}},
	{"aq:username", "Your username", []string{"preferred_username"}},
	{"aq:locale", "Your preferred language", []string{"locale"}},
	{"aq:zoneinfo", "Your time zone", []string{"zoneinfo"}},
}

// scopeSet is the provider's scopes: the built-in ones and those the
// admin defined.
type scopeSet map[string]Scope

func newScopeSet(custom []Scope) (scopeSet, error) {
	s := scopeSet{}
	for _, b := range builtinScopes {
		s[b.Name] = b
	}
	for _, c := range custom {
		if err := validScopeName(c.Name); err != nil {
			return nil, err
		}
		if _, dup := s[c.Name]; dup {
			return nil, fmt.Errorf("scope %s is already defined", c.Name)
		}
		for _, cl := range c.Claims {
			if cl == "" || strings.ContainsAny(cl, " \"\\") || len(cl) > 64 || protocolClaims[cl] {
				return nil, fmt.Errorf("scope %s: %q cannot be a released claim", c.Name, cl)
			}
		}
		if c.Description == "" {
			c.Description = "Your " + strings.Join(c.Claims, ", ")
		}
		s[c.Name] = c
	}
	return s, nil
}

// validScopeName: RFC 6749 §3.3 scope-token, bounded, without the "~"
// Gatehouse reads as the required marker.
func validScopeName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("scope %q must be 1 to 64 characters", name)
	}
	for _, r := range name {
		if r <= 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '~' {
			return fmt.Errorf("scope %q: only printable ASCII without space, quote, backslash or ~", name)
		}
	}
	return nil
}

// allowedScopes are the scopes client may ask for: its list, or every
// scope the provider has.
func (p *Provider) allowedScopes(c *Client) []string {
	if len(c.Scopes) == 0 {
		return p.scopes.names()
	}
	return c.Scopes
}

// names lists the scope names, sorted.
func (s scopeSet) names() []string { return slices.Sorted(maps.Keys(s)) }

// claims lists every claim some scope releases, sorted.
func (s scopeSet) claims() []string {
	var out []string
	for _, sc := range s {
		for _, c := range sc.Claims {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// releasable reports whether a client allowed scopes may receive claim.
func (s scopeSet) releasable(allowed []string, claim string) bool {
	for _, name := range allowed {
		if slices.Contains(s[name].Claims, claim) {
			return true
		}
	}
	return false
}

// userScope reports whether a scope is about a person (and so has no
// meaning without one).
func userScope(name string) bool {
	switch name {
	case "openid", "offline_access":
		return true
	}
	for _, b := range builtinScopes {
		if b.Name == name {
			return len(b.Claims) > 0
		}
	}
	return false
}

// protocolClaims are set by the provider, never released from a user
// record.
var protocolClaims = map[string]bool{"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"auth_time": true, "nonce": true, "acr": true, "amr": true, "azp": true, "sid": true, "at_hash": true, "c_hash": true,
	"acr_levels": true, "events": true, "cnf": true}

// claimValue is a user's value for a claim, if the user has one.
func claimValue(u users.User, claim string) (any, bool) {
	str := func(v string) (any, bool) { return v, v != "" }
	switch claim {
	case "name":
		return str(u.Name)
	case "given_name":
		return str(u.GivenName)
	case "family_name":
		return str(u.FamilyName)
	case "middle_name":
		return str(u.MiddleName)
	case "nickname":
		return str(u.Nickname)
	case "preferred_username":
		return str(u.Username)
	case "picture":
		return str(u.Picture)
	case "website":
		return str(u.Website)
	case "locale":
		return str(u.Locale)
	case "zoneinfo":
		return str(u.Zoneinfo)
	case "updated_at":
		return u.UpdatedAt.Unix(), !u.UpdatedAt.IsZero()
	case "email":
		return str(u.Email)
	case "email_verified":
		return u.EmailVerified, u.Email != ""
	case "phone_number":
		return str(u.PhoneNumber)
	case "phone_number_verified":
		return u.PhoneNumberVerified, u.PhoneNumber != ""
	case "address":
		return u.Address, !u.Address.Empty()
	case "groups":
		return append([]string{}, u.Groups...), true
	}
	return str(u.Attributes[claim])
}

// claimSpec is one entry of the claims request parameter (OIDC Core
// §5.5.1): null, or essential and a value or values.
type claimSpec struct {
	Essential bool  `json:"essential,omitempty"`
	Value     any   `json:"value,omitempty"`
	Values    []any `json:"values,omitempty"`
}

// claimsRequest is the claims request parameter (OIDC Core §5.5).
type claimsRequest struct {
	IDToken  map[string]*claimSpec `json:"id_token,omitempty"`
	Userinfo map[string]*claimSpec `json:"userinfo,omitempty"`
}

// maxRequestedClaims bounds the claims one request may name.
const maxRequestedClaims = 64

// parseClaimsRequest reads the claims parameter. Unknown members are
// ignored (§5.5); a member that is not an object, or a claim whose
// request is not null or an object, is an error.
func parseClaimsRequest(raw string) (*claimsRequest, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil || top == nil {
		return nil, errors.New("not a JSON object of claim requests")
	}
	var c claimsRequest
	n := 0
	for member, dst := range map[string]*map[string]*claimSpec{"id_token": &c.IDToken, "userinfo": &c.Userinfo} {
		body, ok := top[member]
		if !ok || string(body) == "null" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("%s must be an object", member)
		}
		out := map[string]*claimSpec{}
		for name, spec := range m {
			if n++; n > maxRequestedClaims {
				return nil, fmt.Errorf("at most %d claims may be requested", maxRequestedClaims)
			}
			if name == "" || len(name) > 64 {
				return nil, errors.New("a claim name must be 1 to 64 characters")
			}
			var cs claimSpec
			if string(spec) != "null" {
				if err := json.Unmarshal(spec, &cs); err != nil {
					return nil, fmt.Errorf("%s.%s must be null or an object with essential, value or values", member, name)
				}
			}
			out[name] = &cs
		}
		*dst = out
	}
	return &c, nil
}

// acr returns the acr values the request asks for and whether it said
// acr is essential (§5.5.1.1).
func (c *claimsRequest) acr() (values []string, essential bool) {
	if c == nil {
		return nil, false
	}
	for _, m := range []map[string]*claimSpec{c.IDToken, c.Userinfo} {
		spec := m["acr"]
		if spec == nil {
			continue
		}
		essential = essential || spec.Essential
		if s, ok := spec.Value.(string); ok {
			values = append(values, s)
		}
		for _, v := range spec.Values {
			if s, ok := v.(string); ok {
				values = append(values, s)
			}
		}
	}
	return values, essential
}

// userClaims lists the user claims the request names (not acr and the
// other claims the provider sets itself), sorted.
func (c *claimsRequest) userClaims() []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, m := range []map[string]*claimSpec{c.IDToken, c.Userinfo} {
		for name := range m {
			if !protocolClaims[name] && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// keep returns the request narrowed to the user claims in kept (and the
// protocol claims), or nil when nothing is left.
func (c *claimsRequest) keep(kept []string) *claimsRequest {
	if c == nil {
		return nil
	}
	filter := func(m map[string]*claimSpec) map[string]*claimSpec {
		out := map[string]*claimSpec{}
		for name, spec := range m {
			if protocolClaims[name] || slices.Contains(kept, name) {
				out[name] = spec
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	n := &claimsRequest{IDToken: filter(c.IDToken), Userinfo: filter(c.Userinfo)}
	if n.IDToken == nil && n.Userinfo == nil {
		return nil
	}
	return n
}

// release adds to out the user's claims that scopes grant and the claims
// the request names in member (id_token or userinfo).
func (s scopeSet) release(out map[string]any, u users.User, scopes []string, requested map[string]*claimSpec) {
	add := func(claim string) {
		if protocolClaims[claim] {
			return
		}
		if v, ok := claimValue(u, claim); ok {
			out[claim] = v
		}
	}
	for _, name := range scopes {
		for _, claim := range s[name].Claims {
			add(claim)
		}
	}
	for claim := range requested {
		add(claim)
	}
}
