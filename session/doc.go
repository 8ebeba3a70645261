// Package session owns the IdP's single sign-on session records: which
// chain modules a browser passed and when, the clients that got tokens in
// it, idle and absolute expiry, the cookie that names it, and the indexes
// by user and by expiry time.
//
// It does not know what levels or acr mean (that is the chain's
// business), and it does not end sessions with their fan-out: the logout
// package does, through Remove, Meta and Expired. The browser state it
// embeds (browser id, CSRF, sealing) comes from package browser.
//
// It imports only browser and store.
package session
