#!/usr/bin/env bash
# Builds ./caddy with Gatehouse from this checkout, using xcaddy v0.4.7
# (pinned in go.mod as a tool).
#   ./xcaddy.sh            -> ./caddy
#   CADDY_VERSION=v2.11.9 ./xcaddy.sh
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"
MODULE=$(go list -m)
# The module is local: never ask the proxy or checksum database for it.
export GOPRIVATE="${GOPRIVATE:+$GOPRIVATE,}$MODULE"
# xcaddy is pinned as a Go tool in go.mod (go get -tool ...@$XCADDY_VERSION),
# which also works where the module proxy refuses version lists.
go tool xcaddy build "$CADDY_VERSION" --output ./caddy --with "$MODULE@v0.0.0=."
./caddy list-modules | grep -E '^(gatehouse|http\.handlers\.gatehouse|admin\.api\.gatehouse)' >&2
echo "built ./caddy with Gatehouse" >&2
