// Package oidc is the chain module kind for remote OpenID providers:
// `oidc` signs people in at any provider found by its issuer URL
// (discovery), by the authorization code flow with PKCE, a nonce bound
// to the sign-in attempt, the ID token verified and the userinfo read.
// It passes with the remote identity (chain.Identity.Unlinked), which
// the engine's Linker (package linking) turns into a local account.
//
// It also receives the provider's back-channel logout tokens (OpenID
// Connect Back-Channel Logout 1.0) at LoginPath/m/<name>/backchannel_logout
// and ends the local sessions that came from the remote session named.
//
// It imports chain, users, audit, logout, store and web (the texts of its
// pages); never the provider.
package oidc
