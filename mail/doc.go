// Package mail sends the messages of the chain's mail modules (account
// activation, password forgotten, magic link, welcome) and owns
// everything about them: the templates (text and HTML, built in and
// overridable from a directory), rendering, the durable queue in the
// store, and delivery by SMTP or, when no SMTP server is configured, to
// an outbox directory of .eml files.
//
// Send renders a message and queues it in the store; it never talks to
// the mail server, so a slow or absent server neither blocks nor loses
// the person's request. Run delivers the queue in the background: it
// claims each due message with a lease (several instances may share a
// store), retries with exponential back-off, and gives up after a number
// of attempts (at once for a recipient the server refuses for good) with
// an error log line and an audit event. Queued messages carry single-use
// links: they are kept with a TTL and deleted as soon as they are
// delivered or given up.
//
// It imports store and audit of Gatehouse, and nothing else of it.
package mail
