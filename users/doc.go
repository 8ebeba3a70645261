// Package users is the user directory: accounts with a stable subject id,
// username, email, profile, groups, a disabled flag and an argon2id
// password hash, kept in a store.Store.
//
// Chain modules (to check credentials and create accounts) and the
// provider (to build claims) both read it; it imports only store.
package users
