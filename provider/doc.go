// Package provider is the OpenID Connect provider as plain net/http
// handlers: discovery, JWKS, authorize, token and userinfo, the client
// registry, and signing keys with rotation.
//
// Login is not inside it: authorize hands the browser to the chain (by a
// return URL) and the chain sends it back to /authorize/resume when done.
// It imports chain, session, store, users and web; never Caddy.
package provider
