#!/usr/bin/env bash
# Refresh-grant and client_credentials throughput, p50/p99, on the
# embedded store and Redis (loopback).
#   bench/tokens.sh [-duration 5s] [-workers 16] [-stores embedded,redis] [-alg RS256|ES256]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./bench/tokenbench "$@"
