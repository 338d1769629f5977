#!/usr/bin/env bash
# Real-runtime test harness: a private containerd and a private dockerd in a temp dir
# of their own, never at the system's default paths, for the end-to-end tests.
#
#   eval "$(scripts/harness.sh start)"   # starts both, prints `export MCM_TEST_...` lines
#   scripts/harness.sh stop [DIR]         # removes containers, stops daemons, cleans all up
#
#   scripts/harness.sh {stop,start,kill}-dockerd    [DIR]
#   scripts/harness.sh {stop,start,kill}-containerd [DIR]
#       stop = SIGTERM (then SIGKILL after a deadline), kill = SIGKILL,
#       start = start again with the same flags and wait until it answers.
#   scripts/harness.sh status [DIR]       # which daemons answer
#
# DIR defaults to $MCM_TEST_HARNESS_DIR. Only what `start` printed goes to stdout;
# everything else goes to stderr. Only processes the harness started (by PID, checked
# against their command line) and container processes inside the harness's own cgroup
# parent are ever signalled.
#
# A thin wrapper: the Go package test/harness does the work, through its command
# test/harness/cmd/mcm-harness (which also starts a Kubernetes node: see its go doc).
# `start` first installs what is missing (scripts/install-deps.sh --harness).
#
# Environment knobs: MCM_HARNESS_TIMEOUT (seconds a daemon gets to answer, default 90).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# go run caches the built command (Go 1.24 and later), so each call costs a
# staleness check, not a link. -C: the module's directory; so DIR is made
# absolute first.
mcm_harness() { exec go -C "$root" run ./test/harness/cmd/mcm-harness "$@"; }

# dir [DIR]: DIR or $MCM_TEST_HARNESS_DIR, absolute; nothing if neither is set.
dir() {
	local d=${1:-${MCM_TEST_HARNESS_DIR:-}}
	if [[ -n "$d" ]]; then realpath -m -- "$d"; fi
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

cmd=${1:-}
case $cmd in
start)
	"$root/scripts/install-deps.sh" --harness >&2
	go -C "$root" run ./test/harness/cmd/mcm-harness start
	printf 'export MCM_TEST_HARNESS=%q\n' "$root/scripts/harness.sh"
	;;
stop | status)
	# shellcheck disable=SC2046 # no word, or one: an absolute path
	mcm_harness "$cmd" $(dir "${2:-}")
	;;
start-dockerd | start-containerd | stop-dockerd | stop-containerd | kill-dockerd | kill-containerd)
	# shellcheck disable=SC2046
	mcm_harness "${cmd%%-*}" "${cmd#*-}" $(dir "${2:-}")
	;;
*) usage ;;
esac
