#!/usr/bin/env bash
# Builds ./caddy with Gatehouse from this checkout, using xcaddy (pinned).
#   ./xcaddy.sh            -> ./caddy
#   CADDY_VERSION=v2.11.9 ./xcaddy.sh
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
XCADDY_VERSION=v0.4.7
CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"
MODULE=$(go list -m)
# The module is local: never ask the proxy or checksum database for it.
export GOPRIVATE="${GOPRIVATE:+$GOPRIVATE,}$MODULE"
GOBIN="$PWD/bin" go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
"$PWD/bin/xcaddy" build "$CADDY_VERSION" --output ./caddy --with "$MODULE@v0.0.0=."
./caddy list-modules | grep -E '^(gatehouse|http\.handlers\.gatehouse|admin\.api\.gatehouse)' >&2
echo "built ./caddy with Gatehouse" >&2
