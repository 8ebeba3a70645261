package mail

import (
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of RFC 5321 §4.5.3.1: a path holds at most 256 octets with its
// angle brackets, a local part at most 64.
const (
	maxAddress   = 254
	maxLocalPart = 64
)

// ParseAddress checks that s is one bare mail address, as a recipient
// must be: an addr-spec (RFC 5322 §3.4.1) such as alice@example.com —
// no display name, no list, no comment, no angle brackets, no quoted
// local part, no domain literal, no control or bidi formatting
// character, at most 254 octets (64 before the @). It returns s
// unchanged, or an error saying what is wrong.
func ParseAddress(s string) (string, error) {
	if s == "" {
		return "", errors.New("the address is empty")
	}
	if err := plainText(s); err != nil {
		return "", fmt.Errorf("the address %w", err)
	}
	if len(s) > maxAddress {
		return "", fmt.Errorf("the address is longer than %d octets", maxAddress)
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a mail address", s)
	}
	if a.Name != "" || a.Address != s {
		return "", fmt.Errorf("%q is not one bare address (like alice@example.com)", s)
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	switch {
	case len(local) > maxLocalPart:
		return "", fmt.Errorf("the address %q has more than %d octets before the @", s, maxLocalPart)
	case strings.ContainsAny(local, `"\`) || strings.ContainsAny(domain, "[]"):
		return "", fmt.Errorf("the address %q is quoted or has a domain literal", s)
	}
	return s, nil
}

// ParseFrom checks a sender, with or without a display name
// ("Acme <noreply@acme.example>" or noreply@acme.example); its address
// part follows the rules of ParseAddress.
func ParseFrom(s string) (*netmail.Address, error) {
	if err := plainText(s); err != nil {
		return nil, fmt.Errorf("the sender %w", err)
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a mail address (like \"Acme <noreply@acme.example>\")", s)
	}
	if _, err := ParseAddress(a.Address); err != nil {
		return nil, err
	}
	if err := plainText(a.Name); err != nil {
		return nil, fmt.Errorf("the sender's name %w", err)
	}
	return a, nil
}

// plainText refuses invalid UTF-8, control characters (CR and LF first:
// they would start a new header) and the bidi controls that make text
// read otherwise than it is.
func plainText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || isBidiControl(r) }); i >= 0 {
		return fmt.Errorf("holds the control character %U", []rune(s[i:])[0])
	}
	return nil
}

// isBidiControl reports the explicit directional formatting characters
// (Unicode Bidirectional Algorithm, UAX #9 §2).
func isBidiControl(r rune) bool {
	switch {
	case r == '\u061c', r == '\u200e', r == '\u200f':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}
