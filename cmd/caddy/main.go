// Command caddy is Caddy with the engage_sso plugin compiled in, plus the
// demo parts (the development IdP and the demo upstream) so that
//
//	go run ./cmd/caddy run
//
// serves the whole sign-in flow from the repository's Caddyfile. Production
// images are built with xcaddy and contain only the plugin (see
// xcaddy.Dockerfile).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/engage-sso/engage-sso/caddymodule"
	_ "github.com/engage-sso/engage-sso/internal/demomodules"
)

func main() {
	caddycmd.Main()
}
