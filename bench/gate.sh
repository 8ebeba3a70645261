#!/usr/bin/env bash
# Throughput of gatehouse_gate (and forward_auth to verify) against plain
# reverse_proxy, with thousands of sessions, on the embedded store and Redis.
#   bench/gate.sh [-sessions 10000] [-rounds 3] [-duration 10s] [-connections 64] [-stores embedded,redis]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./bench/gatebench "$@"
