// Package gatehouse plugs the Gatehouse modules into Caddy. Import it (as
// xcaddy does with --with github.com/gatehouse-idp/gatehouse) to get the
// gatehouse app, the gatehouse_idp and gatehouse_gate handlers, the admin
// API and the `caddy gatehouse` commands.
package gatehouse

import _ "github.com/gatehouse-idp/gatehouse/caddymodule" // registers the modules
