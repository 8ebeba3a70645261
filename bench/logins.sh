#!/usr/bin/env bash
# Memory and throughput of concurrent password logins (loopback).
#   bench/logins.sh [-concurrent 50] [-rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./bench/loginbench "$@"
