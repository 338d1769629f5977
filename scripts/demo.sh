#!/usr/bin/env bash
# See the point in one command, on a machine with no container engine of its own
# (Debian, as root): starts a private containerd and dockerd (scripts/harness.sh),
# the exporter against them, and a container whose worker process is OOM-killed
# while the container itself keeps running — the kill that no restart and no exit
# code reveals — then shows Docker's own view of that container next to the
# exporter's, and stops everything again.
#
#   scripts/demo.sh            # exporter on 127.0.0.1:3001 (DEMO_ADDR to change)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ADDR=${DEMO_ADDR:-127.0.0.1:3001}

# What the demo runs and nothing more: the harness's runtimes, and curl.
scripts/install-deps.sh --harness curl
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
pid=""
# shellcheck disable=SC2317 # run by the trap, which shellcheck does not follow
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"
}
trap cleanup EXIT

bin="$MCM_TEST_HARNESS_DIR/missing-container-metrics"
echo "== building the exporter"
go build -o "$bin" ./cmd/missing-container-metrics
# The demo's container runs under the harness's cgroup parent (as with Docker's
# --cgroup-parent): the kernel reader is told to trust it.
"$bin" --web.listen-address="$ADDR" --docker.host="$MCM_TEST_DOCKER_HOST" --kernel.cgroup-parent="$MCM_TEST_CGROUP_PARENT" \
	>"$MCM_TEST_HARNESS_DIR/exporter.log" 2>&1 &
pid=$!

export DOCKER_HOST=$MCM_TEST_DOCKER_HOST
echo "== a container (limit 32 MiB) whose worker is OOM-killed while its shell lives on"
docker run -d --name fluentd-demo --network none --cgroup-parent "$MCM_TEST_CGROUP_PARENT" \
	--memory 32m --memory-swap 32m "$MCM_TEST_IMAGE" \
	sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1; echo worker killed; sleep 100000'

for _ in $(seq 300); do
	if curl -fsS "http://$ADDR/metrics" 2>/dev/null | grep -q 'container_ooms_total{.*name="fluentd-demo".*} 1'; then
		echo
		echo "== Docker's view: the container runs, it never exited, nothing restarted"
		docker ps --filter name=fluentd-demo --format 'docker ps:      {{.Names}}  {{.Status}}' | sed 's/^/   /'
		docker inspect -f 'docker inspect: Running={{.State.Running}} OOMKilled={{.State.OOMKilled}} ExitCode={{.State.ExitCode}} RestartCount={{.RestartCount}}' fluentd-demo | sed 's/^/   /'
		echo
		echo "== missing-container-metrics' view: curl http://$ADDR/metrics (labels but the process left out)"
		metrics=$(curl -fsS "http://$ADDR/metrics" | grep 'name="fluentd-demo"')
		grep -E '^container_(ooms|oom_kills_by_process|restarts)_total' <<<"$metrics" |
			sed -E 's/\{[^}]*(process="[^"]*")[^}]*\}/{\1}/; s/\{[^}]*container_id[^}]*\}//; s/^/   /'
		echo "   (no container_last_exit_code: the container has not exited)"
		echo
		echo "== in full:"
		grep '^container_ooms_total' <<<"$metrics"
		exit 0
	fi
	sleep 0.1
done
echo "demo: the OOM kill did not show within 30 s; exporter log:" >&2
cat "$MCM_TEST_HARNESS_DIR/exporter.log" >&2
exit 1
