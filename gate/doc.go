// Package gate is the front door: plain net/http middleware that lets a
// request reach an upstream only when its gate session satisfies the
// route's policy (authentication level, freshness, users and groups), and
// tells the upstream who the user is in headers.
//
// A gate is an ordinary OpenID Connect relying party (go-oidc and
// x/oauth2): it sends browsers to the provider's authorization endpoint
// with PKCE, takes the code at /.gatehouse/callback on the protected
// host, and keeps its own session for that host in the store. When the
// provider runs in the same process, the caller hands in an HTTP client
// whose transport serves the provider in process; nothing else differs.
//
// Hot path: one HMAC check of the cookie, then an in-process cache; the
// store is read only when the cache entry is older than CacheTTL, which
// bounds how long a removed group or a disabled user keeps access.
package gate
