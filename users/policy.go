package users

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
)

// PasswordPolicy is what a new password must satisfy. Checked whenever a
// password is set (admin, registration, reset), never at login.
type PasswordPolicy struct {
	// MinLength in characters. Default 12.
	MinLength int `json:"min_length,omitempty"`
	// MaxLength in characters. Default 128.
	MaxLength int `json:"max_length,omitempty"`
	// MinStrength is the zxcvbn score (0-4) a password must reach: 3 by
	// default, so common passwords (zxcvbn's list of the 30,000 most
	// used ones), keyboard walks, dates and words with digits are refused.
	MinStrength int `json:"min_strength,omitempty"`
}

// DefaultPasswordPolicy: at least 12 characters, zxcvbn score 3.
func DefaultPasswordPolicy() PasswordPolicy {
	return PasswordPolicy{MinLength: 12, MaxLength: 128, MinStrength: 3}
}

func (p PasswordPolicy) withDefaults() PasswordPolicy {
	d := DefaultPasswordPolicy()
	if p.MinLength == 0 {
		p.MinLength = d.MinLength
	}
	if p.MaxLength == 0 {
		p.MaxLength = d.MaxLength
	}
	return p
}

// Validate checks the policy's own settings.
func (p PasswordPolicy) Validate() error {
	p = p.withDefaults()
	switch {
	case p.MinLength < 8:
		return errors.New("password min_length below 8 is too weak")
	case p.MaxLength < p.MinLength || p.MaxLength > 1024:
		return errors.New("password max_length must be between min_length and 1024")
	case p.MinStrength < 0 || p.MinStrength > 4:
		return errors.New("password min_strength is a zxcvbn score, 0 to 4")
	}
	return nil
}

// PolicyError is a password the policy refuses; the message says why,
// for the person who chose it.
type PolicyError struct{ Message string }

func (e *PolicyError) Error() string { return e.Message }

// Check tells whether password may be u's new password.
func (p PasswordPolicy) Check(password string, u User) error {
	p = p.withDefaults()
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return &PolicyError{"The password is not valid text."}
	case n < p.MinLength:
		return &PolicyError{fmt.Sprintf("The password must have at least %d characters.", p.MinLength)}
	case n > p.MaxLength:
		return &PolicyError{fmt.Sprintf("The password must have at most %d characters.", p.MaxLength)}
	}
	lower := strings.ToLower(password)
	for _, mine := range []string{u.Username, u.Email, strings.Split(u.Email, "@")[0], u.Name} {
		if m := strings.ToLower(strings.TrimSpace(mine)); len(m) >= 4 && strings.Contains(lower, m) {
			return &PolicyError{"The password must not contain your username, name or email address."}
		}
	}
	if p.MinStrength > 0 {
		inputs := []string{u.Username, u.Email, u.Name, u.GivenName, u.FamilyName, "gatehouse"}
		if zxcvbn.PasswordStrength(password, inputs).Score < p.MinStrength {
			return &PolicyError{"The password is too easy to guess (a common password, a word with digits, a pattern). Use a longer one, for example a few unrelated words."}
		}
	}
	return nil
}
