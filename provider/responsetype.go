package provider

import (
	"slices"
	"strings"
)

// supportedResponseTypes are the response types of OAuth 2.0 Multiple
// Response Type Encoding Practices, in their canonical (sorted) form.
var supportedResponseTypes = []string{"code", "code id_token", "code id_token token", "code token", "id_token", "id_token token", "none"}

// normalResponseType returns a response type with its values sorted (the
// order is not significant, §2) and whether it is supported.
func normalResponseType(rt string) (string, bool) {
	parts := strings.Fields(rt)
	slices.Sort(parts)
	if len(parts) == 0 || len(slices.Compact(slices.Clone(parts))) != len(parts) {
		return "", false
	}
	n := strings.Join(parts, " ")
	return n, slices.Contains(supportedResponseTypes, n)
}

// responseType is a parsed response type.
type responseType struct {
	code, idToken, token bool
}

func parseResponseType(norm string) responseType {
	var rt responseType
	for _, v := range strings.Fields(norm) {
		switch v {
		case "code":
			rt.code = true
		case "id_token":
			rt.idToken = true
		case "token":
			rt.token = true
		}
	}
	return rt
}

// frontChannelTokens reports whether a token travels through the browser
// (implicit and hybrid flows): such responses default to the fragment
// and need a nonce when an ID token is among them (OIDC Core §3.2.2.1,
// §3.3.2.11).
func (rt responseType) frontChannelTokens() bool { return rt.idToken || rt.token }
