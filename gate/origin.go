package gate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// A gate serves a fixed list of origins (scheme://host[:port]) that come
// from the configuration: the site addresses it is on, or its `hosts`.
// Its redirect URIs are those origins' /.gatehouse/callback, registered
// when Caddy starts, never built from a request's Host header: a request
// for any other origin (another name, another port) is refused.

// CanonicalOrigin returns raw (scheme://host[:port], nothing else) in
// one spelling: lower case, the scheme's default port dropped.
func CanonicalOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("origin %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("origin %q must start with http:// or https://", raw)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q must be scheme://host[:port] and nothing more", raw)
	}
	if strings.Contains(u.Hostname(), "*") {
		return "", fmt.Errorf("origin %q: a gate needs exact host names (its callback URL is registered in advance), not wildcards", raw)
	}
	return originOf(u.Scheme, u.Host)
}

// originOf builds the canonical origin of scheme and a Host value.
func originOf(scheme, hostport string) (string, error) {
	hostport = strings.ToLower(hostport)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, "" // no port
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.ContainsFunc(host, func(c rune) bool {
		return !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':')
	}) {
		return "", errors.New("malformed host")
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	if strings.ContainsFunc(port, func(c rune) bool { return c < '0' || c > '9' }) || len(port) > 5 {
		return "", errors.New("malformed port")
	}
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port), nil
	}
	if strings.Contains(host, ":") {
		return scheme + "://[" + host + "]", nil
	}
	return scheme + "://" + host, nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

type schemeKey struct{}

// WithScheme tells the gate the scheme a request was really made with,
// when TLS ended before it at a proxy the server trusts (the caller
// checked the proxy; a client's own X-Forwarded-Proto is never taken).
func WithScheme(ctx context.Context, scheme string) context.Context {
	return context.WithValue(ctx, schemeKey{}, scheme)
}

// requestOrigin is the origin a request was made to: its scheme (TLS or
// not, or what a trusted proxy said) and its Host header.
func requestOrigin(r *http.Request) (string, error) {
	return originOf(requestScheme(r), r.Host)
}

// requestScheme is the scheme r came in with: https or http.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if s, ok := r.Context().Value(schemeKey{}).(string); ok && (s == "https" || s == "http") {
		return s
	}
	return "http"
}

// hostOf is the host[:port] part of a canonical origin.
func hostOf(origin string) string {
	_, h, _ := strings.Cut(origin, "://")
	return h
}
