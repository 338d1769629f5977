#!/usr/bin/env bash
# The end-to-end benchmark (docs/performance.md): as root on Debian, starts a
# private containerd and dockerd (scripts/harness.sh), builds the exporter as
# released (make build: static, stripped), and runs test/bench against them,
# which prints one table: start to all tracked, scrape time, resident memory,
# bytes per container, idle CPU, CPU per container lifecycle, OOM kill to
# /metrics, and a host of 10,000 containers (empty memory cgroups beside the
# running ones). The harness is stopped at the end, also on failure.
#
#   scripts/bench.sh                              # 200 containers, 5 starts, 10,000 for the large host
#   scripts/bench.sh -containers 50 -cgroups 0    # smaller, no large host
#   scripts/bench.sh -earlier /path/to/binary     # the earlier tool side by side
#   MCM_BENCH_EARLIER_SRC=/path/to/checkout scripts/bench.sh   # build the earlier tool first
#
# The earlier tool: the Go module proxy does not serve
# github.com/draganm/missing-container-metrics (403), so give a binary with
# -earlier, or a checkout of https://github.com/draganm/missing-container-metrics
# in MCM_BENCH_EARLIER_SRC, which is built here with `go build` (its
# dependencies do come from the proxy).
#
# Every figure is a time or a size of a real process: the table prints the
# load average beside it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
trap 'scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"' EXIT

echo "== building the exporter (make build)"
make --no-print-directory build BIN_DIR="$MCM_TEST_HARNESS_DIR/bin" >&2
args=("$@")
if [[ -n "${MCM_BENCH_EARLIER_SRC:-}" ]]; then
	echo "== building the earlier tool from $MCM_BENCH_EARLIER_SRC"
	(cd "$MCM_BENCH_EARLIER_SRC" && CGO_ENABLED=0 go build -o "$MCM_TEST_HARNESS_DIR/bin/missing-container-metrics-earlier" .) >&2
	args=(-earlier "$MCM_TEST_HARNESS_DIR/bin/missing-container-metrics-earlier" "${args[@]}")
fi
echo "== test/bench ${args[*]}"
go build -o "$MCM_TEST_HARNESS_DIR/bin/bench" ./test/bench
"$MCM_TEST_HARNESS_DIR/bin/bench" -exporter "$MCM_TEST_HARNESS_DIR/bin/missing-container-metrics" "${args[@]}"
