// Package session owns the IdP's single sign-on sessions, the browser
// cookies that carry them (gorilla/securecookie, keys kept in the store so
// every instance shares them), and CSRF tokens for forms.
//
// A session records which chain modules the browser passed and when; it
// does not know what levels or acr mean (that is the chain's business).
// It imports only store.
package session
