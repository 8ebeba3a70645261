#!/usr/bin/env bash
# What sessions cost the store: bytes per SSO and gate session in Redis
# (to a million of each) and in the embedded store, and read latency as
# they grow.
#   bench/capacity.sh [-redis 1000000] [-embedded 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./bench/capacity "$@"
