#!/usr/bin/env bash
# Throughput of gatehouse_gate against plain reverse_proxy (loopback, wrk).
#   bench/gate.sh [-rounds 3] [-duration 10s] [-connections 32]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./bench/gatebench "$@"
