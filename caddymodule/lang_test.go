package caddymodule

import "testing"

func TestLangErrors(t *testing.T) {
	wrap := func(body string) string {
		return "{\n\tgatehouse {\n\t\tissuer https://a.example\n" + body + "\n\t}\n}\n"
	}
	checkAdaptErrors(t, []struct{ name, input, want string }{
		{"no language", wrap("lang"), "lang takes the languages pages may be shown in, the default first (shipped: [en de es fr nl]), at Caddyfile:4"},
		{"unknown language", wrap("lang de xx"), `language "xx" is not one pages are translated to (en, de, es, fr, nl), at Caddyfile:4`},
		{"not shipped", wrap("lang ja"), `language "ja" is not one pages are translated to`},
		{"twice in the list", wrap("lang de de"), `language "de" is listed twice`},
		{"given twice", wrap("lang de\nlang fr"), "lang is given twice, at Caddyfile:5"},
		{"with a block", wrap("lang de {\nx\n}"), "lang takes no block"},
	})
}
