// Package ldap is a user source (users.Source) over an LDAP directory or
// Active Directory, with go-ldap: a pool of connections (ldaps:// or
// StartTLS), a service account's search for the person, a bind as them
// for the password, groups from memberOf or a group search.
//
// It imports users and go-ldap; it must not import Caddy nor the chain.
package ldap
