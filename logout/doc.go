// Package logout is the one owner of ending a single sign-on session.
// Whatever ends one — a client's RP-initiated logout, a gate's
// /.gatehouse/logout, the account page, the admin API, a disabled user, a
// password change, idle or absolute expiry — calls Service.End (or EndAll
// for every session of a user), and nothing else.
//
// End first records a job in the store, then removes the session (its
// cookie stops working everywhere), then tells every party that holds
// something of the session (the provider revokes its tokens and names the
// clients' back-channel logout URIs; the gates drop their sessions and
// name their upstream hooks). Notices go to a durable delivery queue of
// signed logout tokens, retried with back-off, that survives a restart.
// A job whose parties could not finish (the store went away half-way) is
// finished later by Run; End reports the failure, so nobody is told they
// are signed out while something still lets them in.
//
// Expired sessions are found through the session package's time-ordered
// index and ended like any other.
//
// It imports session and store; providers and gates subscribe to it as
// parties (interfaces defined here), so it never calls up into them.
package logout
