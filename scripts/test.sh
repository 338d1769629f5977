#!/usr/bin/env bash
# The project's one test command (run it as root on Debian):
#   installs what the tests need (Debian packages), checks formatting, vet,
#   staticcheck and shellcheck, starts a private containerd, dockerd and Podman
#   (scripts/harness.sh), runs every Go test with the race detector — unit and
#   end-to-end against those real runtimes, CRI-O built from its Go module, and
#   real kernel OOM kills — and stops the runtimes again; then the Kubernetes
#   node tests (test/kubernetes), on a node of their own, and a few of them again
#   on a node on CRI-O.
# Under CI=true a missing prerequisite fails the run instead of skipping tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
test/vm/prepare.sh # the cgroup v2 VM test (test/vm): qemu, and a Debian kernel cached once

# The Kubernetes node tests' binaries (test/kubernetes/prepare.sh): cached, or
# built in the background while the other tests run (cold, about 15 minutes of
# CPU), at a lower priority; waited for only before the node tests. setsid:
# its own process group, so that an early exit stops the whole build.
test/kubernetes/prepare.sh deps
kube_out=$(mktemp) kube_log=$(mktemp)
setsid nice -n 10 test/kubernetes/prepare.sh build >"$kube_out" 2>"$kube_log" &
kube_build=$!
# CRI-O (test/crio/prepare.sh), the same way: cached, or built from its Go
# module in the background (cold, about 9 minutes of CPU). The CRI-O end-to-end
# tests wait for it (prepare.sh's lock), the Kubernetes node on CRI-O too.
test/crio/prepare.sh deps
crio_out=$(mktemp) crio_log=$(mktemp)
setsid nice -n 10 test/crio/prepare.sh build >"$crio_out" 2>"$crio_log" &
crio_build=$!
stop_kube_build() {
	if [[ -n "$kube_build" ]]; then kill -- "-$kube_build" 2>/dev/null || true; fi
	if [[ -n "$crio_build" ]]; then kill -- "-$crio_build" 2>/dev/null || true; fi
	rm -f "$kube_out" "$kube_log" "$crio_out" "$crio_log"
}
trap stop_kube_build EXIT

echo "== gofmt"
unformatted=$(gofmt -l cmd internal test)
if [[ -n "$unformatted" ]]; then
	printf 'gofmt would change:\n%s\n' "$unformatted"
	exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== shellcheck"
git ls-files -z '*.sh' .ci/run | xargs -0 shellcheck

echo "== starting the private runtimes"
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
trap 'scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"; stop_kube_build' EXIT

# What tests keep for a person to look at (the kill page's screenshot from a real
# browser) stays after the run, here:
export MCM_TEST_ARTIFACTS=${MCM_TEST_ARTIFACTS:-$(mktemp -d /tmp/mcm-test-artifacts.XXXXXX)}
echo "== test artefacts in $MCM_TEST_ARTIFACTS"

echo "== go test"
# 30 minutes: the CRI-O tests may wait for CRI-O's build.
go test -race -count=1 -timeout 30m "$@" ./...

# Every parser of outside data, fuzzed for a bounded number of inputs (the
# seed corpora already ran above as plain tests): every Fuzz target of the
# module, found in its test files (go test -list would run the e2e packages'
# TestMain, which starts runtimes). A count, not a duration: Go 1.26's fuzz
# coordinator can fail a duration-bounded run with "context deadline
# exceeded" on a loaded machine (golang/go#75804). FUZZTIME=0 skips this.
fuzztime=${FUZZTIME:-100000x}
if [[ "$fuzztime" != 0 ]]; then
	echo "== fuzz ($fuzztime each)"
	# Each package in the module of its directory: the companion's is one of its own.
	grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal cmd |
		sed -E 's#^(.*)/[^/]*:func (Fuzz.*)$#\1 \2#' | sort -u |
		while read -r dir target; do
			go -C "$dir" test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" . </dev/null
		done
fi

# ---- the Kubernetes Events companion: a Go module of its own, so that client-go
# stays out of the exporter's go.mod (gofmt above covered it).
echo "== events companion: vet, staticcheck, go test"
staticcheck=$(go tool -n staticcheck) # the exporter module's pinned staticcheck
(cd cmd/missing-container-metrics-events && go vet ./... && "$staticcheck" ./... && go test -race -count=1 -timeout 10m "$@" ./...)

# ---- deploy/: Helm chart, Kubernetes manifests, alert rules, dashboard, systemd unit.
# A Go module of its own (Kubernetes' API types, Prometheus' PromQL parser and helm's
# linter stay out of the exporter's go.mod); run while the harness's dockerd is up.
# No -race: these tests check files, they share no state between goroutines.
echo "== deploy: gofmt, vet, staticcheck, go test"
unformatted=$(gofmt -l deploy)
if [[ -n "$unformatted" ]]; then
	printf 'gofmt would change:\n%s\n' "$unformatted"
	exit 1
fi
(cd deploy && go vet ./... && "$staticcheck" ./... && go test -count=1 -timeout 10m "$@" ./...)

# ---- test/kubernetes: the chart and the manifests on a real single-node
# Kubernetes (test/harness starts it: etcd, kube-apiserver, controller-manager,
# scheduler, a kubelet on a containerd of its own), counts against the kubelet's.
# A Go module of its own (client-go, helm).
echo "== kubernetes: waiting for the binaries (test/kubernetes/prepare.sh)"
build_status=0
wait "$kube_build" || build_status=$?
kube_build="" # done: its process group is no longer ours to signal
cat "$kube_log"
if ((build_status != 0)); then
	echo "test/kubernetes/prepare.sh build failed"
	exit 1
fi
eval "$(cat "$kube_out")"
echo "== kubernetes: vet, staticcheck, go test"
(cd test/kubernetes && go vet ./... && "$staticcheck" ./... && go test -count=1 -timeout 25m "$@" ./...)

# ---- The same node on CRI-O once (MCM_KUBERNETES_RUNTIME=cri-o): the chart's
# defaults there, and the counts against the kubelet's.
echo "== kubernetes on CRI-O: waiting for CRI-O (test/crio/prepare.sh)"
build_status=0
wait "$crio_build" || build_status=$?
crio_build=""
cat "$crio_log"
if ((build_status != 0)); then
	echo "test/crio/prepare.sh build failed"
	exit 1
fi
eval "$(cat "$crio_out")"
echo "== kubernetes on CRI-O: go test"
(cd test/kubernetes && MCM_KUBERNETES_RUNTIME=cri-o go test -count=1 -timeout 15m \
	-run '^TestChart$/^defaults|^TestCrashLoop$|^TestMainProcessOOMKilled$|^TestWorkerOOMKilled$' "$@" ./...)
