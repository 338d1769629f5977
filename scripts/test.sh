#!/usr/bin/env bash
# The project's one test command (run it as root on Debian):
#   installs what the tests need (Debian packages), checks formatting, vet and
#   staticcheck, starts a private containerd and dockerd (scripts/harness.sh),
#   runs every Go test with the race detector — unit and end-to-end against those
#   real runtimes and real kernel OOM kills — and stops the runtimes again.
# Under CI=true a missing prerequisite fails the run instead of skipping tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
test/vm/prepare.sh # the cgroup v2 VM test (test/vm): qemu, and a Debian kernel cached once

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

echo "== starting the private runtimes"
exports=$(scripts/harness.sh start) # fails the script if start fails
eval "$exports"
trap 'scripts/harness.sh stop "$MCM_TEST_HARNESS_DIR"' EXIT

# What tests keep for a person to look at (the kill page's screenshot from a real
# browser) stays after the run, here:
export MCM_TEST_ARTIFACTS=${MCM_TEST_ARTIFACTS:-$(mktemp -d /tmp/mcm-test-artifacts.XXXXXX)}
echo "== test artefacts in $MCM_TEST_ARTIFACTS"

echo "== go test"
go test -race -count=1 -timeout 20m "$@" ./...

# Every parser of outside data, fuzzed for a bounded time (the seed corpora
# already ran above as plain tests). FUZZTIME=0 skips this.
fuzztime=${FUZZTIME:-10s}
if [[ "$fuzztime" != 0 ]]; then
	echo "== fuzz ($fuzztime each)"
	for target in ./internal/docker:FuzzTranslate ./internal/collector:FuzzLabelValues \
		./internal/kernel:FuzzKernelLog ./internal/kernel:FuzzContainerPath; do
		go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" "${target%%:*}"
	done
fi

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
staticcheck=$(go tool -n staticcheck) # the exporter module's pinned staticcheck
(cd deploy && go vet ./... && "$staticcheck" ./... && go test -count=1 -timeout 10m "$@" ./...)
