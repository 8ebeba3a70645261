package gate

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Policy is what one protected route demands.
type Policy struct {
	// ACR: the session must have passed any one of these levels. Empty:
	// any signed-in user.
	ACR []string `json:"acr,omitempty"`
	// MaxAge: the user must have authenticated within this time.
	MaxAge time.Duration `json:"max_age,omitempty"`
	// AllowUsers/AllowGroups: when either is set, only these users or
	// members of these groups pass.
	AllowUsers  []string `json:"allow_users,omitempty"`
	AllowGroups []string `json:"allow_groups,omitempty"`
	// DenyUsers/DenyGroups are refused even when allowed.
	DenyUsers  []string `json:"deny_users,omitempty"`
	DenyGroups []string `json:"deny_groups,omitempty"`
	// Bypass paths need no login: exact paths, or prefixes ending in "*",
	// or path.Match patterns.
	Bypass []string `json:"bypass,omitempty"`
}

// Validate checks the policy.
func (p *Policy) Validate() error {
	if p.MaxAge < 0 {
		return errors.New("max_age must not be negative")
	}
	for _, b := range p.Bypass {
		if !strings.HasPrefix(b, "/") {
			return fmt.Errorf("bypass path %q must start with /", b)
		}
		if _, err := path.Match(b, "/"); err != nil {
			return fmt.Errorf("bypass pattern %q: %v", b, err)
		}
	}
	for _, l := range p.ACR {
		if l == "" || strings.ContainsAny(l, " \t") {
			return fmt.Errorf("bad acr level %q", l)
		}
	}
	return nil
}

// Bypassed reports whether the path needs no login.
func (p *Policy) Bypassed(urlPath string) bool {
	for _, b := range p.Bypass {
		if pre, ok := strings.CutSuffix(b, "*"); ok && !strings.ContainsAny(pre, "*?[") {
			if strings.HasPrefix(urlPath, pre) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(b, urlPath); ok {
			return true
		}
	}
	return false
}

// Verdict is what a policy says about a session.
type Verdict int

const (
	// Pass: let the request through.
	Pass Verdict = iota
	// Login: no usable session; authenticate.
	Login
	// StepUp: signed in, but a level is missing or too old.
	StepUp
	// Forbidden: signed in with enough level, but not allowed.
	Forbidden
)

// result is the verdict as an outcome label (Config.Observe).
func (v Verdict) result() string {
	return [...]string{"pass", "login", "step_up", "forbidden"}[v]
}

func (v Verdict) String() string {
	return [...]string{"pass", "login", "step-up", "forbidden"}[v]
}

// Decide applies the policy to s (nil: no session) at time now.
func (p *Policy) Decide(s *Session, now time.Time) Verdict {
	if s == nil {
		return Login
	}
	if s.Disabled {
		return Forbidden
	}
	if slices.Contains(p.DenyUsers, s.Username) || slices.ContainsFunc(s.Groups, func(g string) bool { return slices.Contains(p.DenyGroups, g) }) {
		return Forbidden
	}
	if len(p.AllowUsers)+len(p.AllowGroups) > 0 &&
		!slices.Contains(p.AllowUsers, s.Username) &&
		!slices.ContainsFunc(s.Groups, func(g string) bool { return slices.Contains(p.AllowGroups, g) }) {
		return Forbidden
	}
	// Who may enter is settled first: nobody is asked for a second factor
	// only to be refused after.
	if len(p.ACR) > 0 && !slices.ContainsFunc(p.ACR, func(l string) bool { return slices.Contains(s.Levels, l) }) {
		return StepUp
	}
	if p.MaxAge > 0 && now.Sub(s.AuthTime) > p.MaxAge {
		return StepUp
	}
	return Pass
}
