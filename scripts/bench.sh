#!/usr/bin/env bash
# The end-to-end benchmark (docs/performance.md): as root on Debian, starts a
# private containerd and dockerd (scripts/harness.sh), builds the exporter as
# released (make build: static, stripped), and runs test/bench against them,
# which prints one table: resident memory with 0 and 200 containers, start to
# all tracked, CPU per 1,000 runtime events, OOM kill to /metrics (p50, p99).
#
#   scripts/bench.sh                       # the defaults: 200 containers, 5 runs, 25 kills
#   scripts/bench.sh -containers 50 -kills 10
#
# Run it on a quiet machine: every figure is a time or a size of a real process.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
trap 'scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"' EXIT

echo "== building the exporter (make build)"
make --no-print-directory build BIN_DIR="$MCM_TEST_HARNESS_DIR/bin" >&2
echo "== go run ./test/bench $*"
go run ./test/bench -exporter "$MCM_TEST_HARNESS_DIR/bin/missing-container-metrics" "$@"
