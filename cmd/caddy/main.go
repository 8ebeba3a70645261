// Command caddy is Caddy with the Gatehouse modules plugged in:
//
//	go run ./cmd/caddy run --config Caddyfile.example
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/gatehouse-idp/gatehouse"
)

func main() {
	caddycmd.Main()
}
