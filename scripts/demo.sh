#!/usr/bin/env bash
# See the point in one command, on a machine with no container engine of its own
# (Debian, as root): starts a private containerd and dockerd (scripts/harness.sh),
# the exporter against them, and a container whose worker process is OOM-killed
# while the container itself keeps running — the kill that no restart and no exit
# code reveals — then shows the scrape and stops everything again.
#
#   scripts/demo.sh            # exporter on 127.0.0.1:3001 (DEMO_ADDR to change)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ADDR=${DEMO_ADDR:-127.0.0.1:3001}

scripts/install-deps.sh curl
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
pid=""
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"
}
trap cleanup EXIT

bin="$MCM_TEST_HARNESS_DIR/missing-container-metrics"
echo "== building the exporter"
go build -o "$bin" ./cmd/missing-container-metrics
"$bin" --web.listen-address="$ADDR" --docker.host="$MCM_TEST_DOCKER_HOST" \
	>"$MCM_TEST_HARNESS_DIR/exporter.log" 2>&1 &
pid=$!

export DOCKER_HOST=$MCM_TEST_DOCKER_HOST
echo "== a container (limit 32 MiB) whose worker is OOM-killed while its shell lives on"
docker run -d --name fluentd-demo --network none --cgroup-parent "$MCM_TEST_CGROUP_PARENT" \
	--memory 32m --memory-swap 32m "$MCM_TEST_IMAGE" \
	sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1; echo worker killed; sleep 100000'

for _ in $(seq 300); do
	if curl -fsS "http://$ADDR/metrics" 2>/dev/null | grep -q 'container_ooms_total{.*name="fluentd-demo".*} 1'; then
		echo "== docker ps: the container is still running"
		docker ps --format '{{.Names}}\t{{.Status}}'
		echo "== curl http://$ADDR/metrics | grep container_"
		curl -fsS "http://$ADDR/metrics" | grep -E '^(# (HELP|TYPE) )?container_'
		exit 0
	fi
	sleep 0.1
done
echo "demo: the OOM kill did not show within 30 s; exporter log:" >&2
cat "$MCM_TEST_HARNESS_DIR/exporter.log" >&2
exit 1
