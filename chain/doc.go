// Package chain is the authentication chain: the Module interface that
// every way of authenticating implements (one subpackage per kind, e.g.
// chain/password), the tree that orders modules, the levels they grant,
// and the login pages that walk a browser through it.
//
// The provider hands a login over to the chain with Start and gets the
// browser back at the return URL it gave; it asks Evaluate whether an SSO
// session satisfies a request. The chain imports session, store, users and
// web, never provider or Caddy.
package chain
