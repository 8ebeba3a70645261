// Package regulate slows and bans guessing. Every secret a person or a
// client presents (a password, a TOTP or recovery code, any later
// module's code or assertion, a client secret) is checked only after
// Begin says the keys involved — the account tried, the client IP, the
// client id — may be tried now; a failure is counted on each key, in
// the store, so every instance shares the counters and restarting a
// login flow resets nothing.
//
// A key's first failures are free; later ones must wait a delay that
// doubles with each failure; MaxRetries failures within FindTime ban the
// key for BanTime, doubling with every further ban within a day. The
// answer during a ban is the same whether the account exists or not,
// and no secret is checked while a key is banned, so a ban reveals
// nothing.
//
// It imports only store.
package regulate
