// Package admin holds the operations an administrator runs on a running
// Gatehouse: users (create, disable, groups, password, module actions,
// delete), sessions, clients, bans and signing keys. Both the admin API
// of Caddy (caddymodule) and the admin console (console) call them, so a
// rule lives in one place.
//
// Every operation takes the actor (who runs it: an admin API caller's
// address, a console admin's username) for the audit lines it writes;
// the admin_action line itself is written by the caller with Record.
//
// It must not import caddymodule, console or Caddy.
package admin
