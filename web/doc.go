// Package web holds every HTML page Gatehouse shows people and the static
// assets they use, embedded in the binary: one look, no external assets,
// no JavaScript needed. It owns the pages' languages too: the message
// catalogues (locales/*.json, English text → translation), the choice of
// a page's language (ui_locales, then Accept-Language) and the template
// functions that translate at render time. It imports nothing of
// Gatehouse.
package web
