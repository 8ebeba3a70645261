// Package web holds every HTML page Gatehouse shows people and the static
// assets they use, embedded in the binary: one look, no external assets,
// no JavaScript needed. It imports nothing of Gatehouse.
package web
