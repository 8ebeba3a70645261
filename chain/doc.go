// Package chain is the authentication chain: the module contract every
// way of authenticating implements (module.go: a core and capability
// interfaces — forms, redirects, scripts, mailed links, user changes,
// admin actions — with one subpackage per kind, e.g. chain/password,
// registered with Register and typed settings), the tree that orders
// module instances, the levels they grant, and the login pages and
// endpoints that walk a browser through it.
//
// The provider hands a login over to the chain with Start and gets the
// browser back at the return URL it gave; it asks Evaluate whether an SSO
// session satisfies a request. The chain imports audit, logout,
// regulate, session, store, users and web, never provider or Caddy.
package chain
