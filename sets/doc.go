// Package sets pushes Security Event Tokens (RFC 8417) to the receivers
// an admin configured, delivered as RFC 8935 describes (an HTTP POST of
// one signed SET, 202 Accepted when taken): Gatehouse's webhooks. A
// receiver (an HR system, a SIEM, an application that keeps its own
// sessions) learns of sign-ins and sign-outs, of accounts created,
// changed, disabled, enabled and deleted, and of credentials changed.
//
// It learns what happened from the audit log (audit.Log.Subscribe): every
// security event passes there, so no call site knows of SETs. Events are
// mapped to the registered types of the OpenID Shared Signals profiles
// (CAEP session-established, session-revoked, credential-change,
// token-claims-change; RISC account-disabled, account-enabled,
// account-purged) and, where none fits (an account created), to a type
// under the issuer.
//
// SETs wait in the store (they survive a restart, and every instance
// works the same queue, each SET sent by one instance at a time), are
// retried with back-off, and given up with an audit line: at once when
// the receiver refuses one with an RFC 8935 error, after the last attempt
// otherwise. The queue is bounded: beyond its size the oldest are dropped
// with an error line.
//
// It imports audit, store and internal/netguard; never provider, chain or
// caddymodule (the signer and the user lookup are handed in).
package sets
