// Package console is the admin console: server-rendered pages at
// <issuer>/admin for users, clients, sessions, bans, signing keys and
// the recent audit trail. It is an http.Handler the provider mounts; it
// checks the signed-in session itself (a group, a level, a recent
// sign-in) and starts a step-up through the chain when the session falls
// short. Every change goes through package admin (the rules shared with
// Caddy's admin API), carries a CSRF token and leaves an admin_action
// audit line naming the admin.
//
// It must not import provider's handlers' internals, caddymodule or
// Caddy.
package console
