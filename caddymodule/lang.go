package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/gatehouse-idp/gatehouse/web"
)

// parseLang reads the languages pages are shown in:
//
//	lang de en    # German by default; English for browsers asking for it
//
// Without it pages come in every shipped language (see web.Languages),
// English by default.
func (a *App) parseLang(d *caddyfile.Dispenser) error {
	if a.Lang != nil {
		return d.Err("lang is given twice")
	}
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("lang takes the languages pages may be shown in, the default first (shipped: %v)", web.Languages())
	}
	if d.NextBlock(d.Nesting()) {
		return d.Err("lang takes no block")
	}
	if err := web.CheckLanguages(args); err != nil {
		return d.Err(err.Error())
	}
	a.Lang = args
	return nil
}
