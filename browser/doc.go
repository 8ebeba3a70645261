// Package browser owns what Gatehouse keeps in a browser and the keys
// behind it: the browser id that binds login flows and forms to the
// browser that started them, CSRF tokens, MACs for small signed cookies,
// sealed (encrypted, authenticated, expiring) values that travel through
// URLs instead of being stored, and the cookie policy (Secure, __Host-,
// SameSite).
//
// Its keys live in the store so every instance, and the same instance
// after a restart, accepts the others' cookies. Sync keeps an instance in
// step with the store: keys another instance wrote are adopted, and keys
// the store lost (Redis flushed) are written back, so a cluster recovers
// by itself. Keys that were replaced keep verifying for a while.
//
// It imports only store.
package browser
