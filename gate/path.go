package gate

import (
	"strings"
	"unicode/utf8"
)

// The gate decides on the path the upstream will see. Upstreams resolve
// dot segments, decode percent-escapes (some twice), treat '\' as '/',
// cut ';' parameters (Tomcat, Jetty), trim trailing dots and spaces
// (Windows) and merge "//". A path any of them would rewrite could match
// a weaker rule at the gate and a protected resource upstream, so on a
// gated site such a path is refused before any rule is applied. What is
// left is one spelling per resource: the decoded path the gate matches
// is the path every upstream serves.

// pathError says why a path is refused; it is shown to the person.
type pathError string

func (e pathError) Error() string { return string(e) }

// CanonicalPath checks escaped, a request path as sent on the wire (the
// URL's escaped path, or the path of X-Forwarded-Uri), and returns its
// decoded form. It refuses, with the reason:
//   - a path that does not start with '/', or has an empty segment ("//");
//   - dot segments ("." or ".."), and segments ending in '.' or a space;
//   - '\', ';', NUL and other control characters, also percent-encoded;
//   - percent-encoded '/' and '.', escapes encoded twice ("%252e"), and
//     needless escapes of unreserved characters ("%61dmin"), so a name
//     has one spelling only;
//   - Windows aliases: file streams ("::$DATA"), 8.3 short names
//     ("ADMINI~1") and characters that best-fit to / \ . ; or :;
//   - malformed escapes and invalid UTF-8.
func CanonicalPath(escaped string) (string, error) {
	if escaped == "" || escaped[0] != '/' {
		return "", pathError("the path must start with /")
	}
	var b strings.Builder
	b.Grow(len(escaped))
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
			return "", pathError("the path has a malformed percent-escape")
		}
		d := unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
		switch {
		case d == '/' || d == '\\' || d == '.' || d == ';':
			return "", pathError("the path has an encoded '/', '\\', '.' or ';'")
		case d < 0x20 || d == 0x7f:
			return "", pathError("the path has an encoded control character")
		case isUnreserved(d):
			return "", pathError("the path encodes a letter, digit or -_~ that needs no encoding")
		case d == '%':
			// An encoded '%' is fine unless it starts an escape: a second
			// decoding would change the path.
			if i+4 < len(escaped) && isHex(escaped[i+3]) && isHex(escaped[i+4]) {
				return "", pathError("the path is encoded twice")
			}
		}
		b.WriteByte(d)
		i += 2
	}
	p := b.String()
	if !utf8.ValidString(p) {
		return "", pathError("the path is not valid UTF-8")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			return "", pathError("the path has a backslash")
		case c == ';':
			return "", pathError("the path has a ';' parameter")
		case c < 0x20 || c == 0x7f:
			return "", pathError("the path has a control character")
		}
	}
	if strings.ContainsFunc(p, isLookalike) {
		return "", pathError("the path has a character that looks like / \\ . ; or :")
	}
	// Segments: the first is empty (the leading '/'), the last may be
	// (a trailing '/'); no other may.
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch {
		case s == "" && i < len(segs)-1:
			return "", pathError("the path has an empty segment (//)")
		case s == "." || s == "..":
			return "", pathError("the path has a . or .. segment")
		case strings.HasSuffix(s, ".") || strings.HasSuffix(s, " "):
			return "", pathError("a path segment ends in a dot or a space")
		case strings.Contains(s, "::") || strings.Contains(s, ":$"):
			return "", pathError("a path segment names a Windows file stream")
		case isShortName(s):
			return "", pathError("a path segment is a Windows short (8.3) name")
		}
	}
	return p, nil
}

// isLookalike: characters that Windows' best-fit conversion, or NFKC
// normalisation, turns into path punctuation (fullwidth and
// compatibility forms of / \ . ; :).
func isLookalike(r rune) bool {
	switch r {
	case '\uFF0F', '\uFF3C', '\uFF0E', '\uFF1B', '\uFF1A', // fullwidth / \ . ; :
		'\u2215', '\u2044', '\u29F8', '\u29F9', // division, fraction, big solidus, big reverse solidus
		'\uFE68', '\uFE52', '\uFE54', '\uFE55', // small reverse solidus, full stop, semicolon, colon
		'\u2024', '\u2025', '\u2026', // one-dot, two-dot leaders, ellipsis
		'\u037E', '\u2236', '\u02D0', '\uA789': // Greek question mark (;), ratio, modifier colons
		return true
	}
	return false
}

// isShortName reports whether a segment has the form of a Windows 8.3
// short name (ADMINI~1, PROGRA~2.TXT), which Windows resolves to the long
// name it stands for.
func isShortName(s string) bool {
	base, ext, _ := strings.Cut(s, ".")
	i := strings.LastIndexByte(base, '~')
	if i < 1 || i > 6 || i == len(base)-1 || len(base) > 8 || len(ext) > 3 {
		return false
	}
	for _, c := range base[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved: RFC 3986 §2.3 characters other than '.', which is
// refused for its own reason.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~'
}
