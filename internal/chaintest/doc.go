// Package chaintest holds chain module kinds for tests only, each using
// a capability of the module contract the built-in kinds do not: a
// RedirectModule against a stand-in OAuth server (test-remote), a
// MailModule with an outbox instead of a mail server (test-mail), a
// ScriptedModule (test-script), and UserModules (test-signup,
// test-reset). Each is one file plus one chain.Register call: the engine,
// the provider and the session know nothing of them.
//
// Only _test.go files import it, so the kinds never reach a real
// configuration.
package chaintest
