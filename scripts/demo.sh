#!/usr/bin/env bash
# See the point in one command, on a machine with no container engine of its own
# (Debian, as root): starts a private containerd and dockerd (scripts/harness.sh),
# the exporter against them, and a container whose worker process is OOM-killed
# while the container itself keeps running — the kill that no restart and no exit
# code reveals — then shows Docker's own view of that container next to the
# exporter's metrics and its record of the kill (/api/v1/kills, the page /kills),
# and stops everything again.
#
#   scripts/demo.sh            # exporter on 127.0.0.1:3001 (DEMO_ADDR to change)
#   scripts/demo.sh --keep     # the same, then keeps running, to look at /kills in a
#                              # browser and make kills of your own; Ctrl-C stops it
#
# A browser on another machine reaches it through ssh -L 3001:127.0.0.1:3001 HOST.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ADDR=${DEMO_ADDR:-127.0.0.1:3001}
keep=""
case ${1:-} in
"") ;;
--keep) keep=1 ;;
*)
	echo "usage: scripts/demo.sh [--keep]" >&2
	exit 2
	;;
esac

# What the demo runs and nothing more: the harness's runtimes, curl and jq.
scripts/install-deps.sh --harness curl jq
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
pid=""
# shellcheck disable=SC2317 # run by the traps, which shellcheck does not follow
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"
}
trap cleanup EXIT
# A signal ends the script through its exit, which stops what it started.
trap 'exit 130' INT TERM

bin="$MCM_TEST_HARNESS_DIR/missing-container-metrics"
echo "== building the exporter"
go build -o "$bin" ./cmd/missing-container-metrics
# The demo's container runs under the harness's cgroup parent (as with Docker's
# --cgroup-parent): the kernel reader is told to trust it.
"$bin" --web.listen-address="$ADDR" --docker.host="$MCM_TEST_DOCKER_HOST" --kernel.cgroup-parent="$MCM_TEST_CGROUP_PARENT" \
	>"$MCM_TEST_HARNESS_DIR/exporter.log" 2>&1 &
pid=$!

# fail says why the demo stops short, with the exporter's log.
fail() {
	echo "demo: $*; exporter log:" >&2
	cat "$MCM_TEST_HARNESS_DIR/exporter.log" >&2
	exit 1
}

# until CMD...: runs CMD every 0.1 s until it succeeds; false after 30 s.
until_30s() {
	for _ in $(seq 300); do
		if "$@" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

export DOCKER_HOST=$MCM_TEST_DOCKER_HOST
echo "== a container (limit 32 MiB) whose worker is OOM-killed while its shell lives on"
docker run -d --name fluentd-demo --network none --cgroup-parent "$MCM_TEST_CGROUP_PARENT" \
	--memory 32m --memory-swap 32m "$MCM_TEST_IMAGE" \
	sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1; echo worker killed; sleep 100000'

# shellcheck disable=SC2317 # run by until_30s
killed() { curl -fsS "http://$ADDR/metrics" | grep -q 'container_ooms_total{.*name="fluentd-demo".*} 1'; }
until_30s killed || fail "the OOM kill did not show within 30 s"
echo
echo "== Docker's view: the container runs, it never exited, nothing restarted"
docker ps --filter name=fluentd-demo --format 'docker ps:      {{.Names}}  {{.Status}}' | sed 's/^/   /'
docker inspect -f 'docker inspect: Running={{.State.Running}} OOMKilled={{.State.OOMKilled}} ExitCode={{.State.ExitCode}} RestartCount={{.RestartCount}}' fluentd-demo | sed 's/^/   /'

# The exporter tells whether the container lived on 5 s after the kill.
api="http://$ADDR/api/v1/kills?container=fluentd-demo"
# shellcheck disable=SC2317 # run by until_30s
decided() { curl -fsS "$api" | jq -e '.kills[0].outcome' >/dev/null; }
until_30s decided || fail "the kill's record has no outcome within 30 s"

echo
echo "== missing-container-metrics' view: curl http://$ADDR/metrics (only the process and outcome labels shown)"
metrics=$(curl -fsS "http://$ADDR/metrics" | grep 'name="fluentd-demo"')
grep -E '^container_(ooms|oom_kills_by_process|oom_kills_by_outcome|restarts)_total' <<<"$metrics" |
	sed -E 's/\{[^}]*((process|outcome)="[^"]*")[^}]*\}/{\1}/; s/\{[^}]*container_id[^}]*\}//; s/^/   /'
echo "   (no container_last_exit_code: the container has not exited)"
echo
echo "== in full:"
grep '^container_ooms_total' <<<"$metrics"

echo
echo "== the kill's record: curl '$api'"
# Where the kernel rate-limited its report (at most ten in five seconds,
# host-wide), the limit, the usage and the trigger are not known: "not known".
record=$(
	cat <<'EOF'
.kills[0] |
def known(f): if f == null then "not known" else f end;
def mib: . / 1048576 | floor | tostring + " MiB";
"   killed:        \(known(.victim.name)) (pid \(known(.victim.pid))), \(
	if .main_process == true then "the main process" elif .main_process == false then "not the main process"
	else "main process or not: not known" end)",
"   limit hit:     \(known({container: "the container's", pod: "the pod's", ancestor: "a parent cgroup's",
	cgroup: "its cgroup's (no container's)", node: "none: the node ran out"}[.scope])), \(
	if .usage_bytes then "\(.usage_bytes | mib) of \(.limit_bytes | mib)" else "usage not known" end)",
"   held by:       \(known(.held_by))",
"   the container: \(known({lived_on: "lived on", ended: "died of it"}[.outcome]))"
EOF
)
curl -fsS "$api" | jq -r "$record"

if [[ -z "$keep" ]]; then
	echo
	echo "== all of it on the page /kills: scripts/demo.sh --keep keeps the demo running to look (docs/kills.md: how to read a kill)"
	exit 0
fi
echo
echo "== running until Ctrl-C (docs/kills.md: how to read a kill)"
echo "   this kill:  http://$ADDR/kills?container=fluentd-demo"
echo "   the kills:  http://$ADDR/kills"
echo "   the API:    http://$ADDR/api/v1/kills"
echo "   metrics:    http://$ADDR/metrics"
echo "   kill more:  DOCKER_HOST=$DOCKER_HOST docker run -d --network none --cgroup-parent $MCM_TEST_CGROUP_PARENT" \
	"--memory 32m --memory-swap 32m $MCM_TEST_IMAGE sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 100000'"
# Ctrl-C (or SIGTERM) ends the wait, and the script: the end that was asked for.
trap 'exit 0' INT TERM
wait "$pid" || true
pid=""
fail "the exporter ended"
