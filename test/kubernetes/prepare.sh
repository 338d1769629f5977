#!/usr/bin/env bash
# Prepares the Kubernetes node tests (test/kubernetes): installs etcd and the CNI
# plugins, and builds into a cache directory, each named by its version and a
# hash of what decides the binary (under $MCM_KUBERNETES_CACHE, default
# /var/cache/missing-container-metrics/kubernetes):
#   v1.34.4-<hash>/            kubelet, kube-apiserver, kube-controller-manager,
#                              kube-scheduler and kubectl: one binary linking the five
#                              (test/kubernetes/build)
#   prometheus-v0.316.0-<hash>/prometheus   upstream Prometheus with its Kubernetes service
#                              discovery, which Debian's package is built without
# Cold: about 11 and 5 minutes of CPU (28 minutes on a 2-core machine at load 20,
# niced, as scripts/test.sh runs it); cached, well under a second.
#
# Usage: test/kubernetes/prepare.sh [deps|build]   (default: both)
#   deps   only the Debian packages (apt; root)
#   build  only the binaries; prints `export MCM_KUBERNETES_BIN_DIR=<dir>` and
#          `export MCM_PROMETHEUS=<binary>` on stdout, for eval and for the tests
# Idempotent; concurrent runs wait for each other. Only stdout is the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CACHE=${MCM_KUBERNETES_CACHE:-/var/cache/missing-container-metrics/kubernetes}
MODULE=test/kubernetes/build
# The Prometheus of deploy/go.mod's PromQL parser, with only the Kubernetes
# service discovery (its build tags; the others would double the build).
PROMETHEUS=github.com/prometheus/prometheus@v0.316.0
PROMETHEUS_TAGS=remove_all_sd,enable_kubernetes_sd
log() { printf 'kubernetes/prepare: %s\n' "$*" >&2; }

deps() {
	scripts/install-deps.sh etcd-server containernetworking-plugins
}

build() {
	build_kubernetes
	build_prometheus
}

build_kubernetes() {
	local version minor pkg ldflags hash dir
	version=$(cd "$MODULE" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
	minor=${version#v1.}
	minor=${minor%%.*}
	pkg=k8s.io/component-base/version
	# The version stamp: without it the servers say v0.0.0, and helm refuses a
	# chart whose kubeVersion it cannot compare. No -trimpath: it would change
	# every package's key in the Go build cache that other builds of Kubernetes
	# packages share. CGO_ENABLED=0, as Kubernetes' own release builds of these four.
	ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	# The module's files, the flags and the Go toolchain decide the binary.
	hash=$( (cd "$MODULE" && cat go.mod go.sum ./*.go && echo "$ldflags" && go version) | sha256sum | cut -c1-12)
	dir=$CACHE/$version-$hash
	if [[ -x "$dir/kube" ]]; then
		log "cached: $dir"
		echo "export MCM_KUBERNETES_BIN_DIR=$dir"
		return
	fi
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9 # another run may be building the same binary; then it is there after the wait
	if [[ ! -x "$dir/kube" ]]; then
		log "building Kubernetes $version into $dir (cold: about 11 minutes of CPU)"
		tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
		chmod 0755 "$tmp"
		trap 'rm -rf "$tmp"' EXIT
		local t0=$SECONDS
		(cd "$MODULE" && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$tmp/kube" .)
		for name in kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl; do
			ln -s kube "$tmp/$name"
		done
		mv -T "$tmp" "$dir"
		trap - EXIT
		log "built in $((SECONDS - t0))s: $dir"
	fi
	flock -u 9
	echo "export MCM_KUBERNETES_BIN_DIR=$dir"
}

build_prometheus() {
	local hash dir
	hash=$( (echo "$PROMETHEUS $PROMETHEUS_TAGS" && go version) | sha256sum | cut -c1-12)
	dir=$CACHE/prometheus-${PROMETHEUS#*@}-$hash
	if [[ ! -x "$dir/prometheus" ]]; then
		mkdir -p "$CACHE"
		exec 9>"$CACHE/.lock-prometheus"
		flock 9
		if [[ ! -x "$dir/prometheus" ]]; then
			log "building Prometheus ${PROMETHEUS#*@} into $dir (cold: about 5 minutes of CPU)"
			tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
			chmod 0755 "$tmp"
			trap 'rm -rf "$tmp"' EXIT
			local t0=$SECONDS
			# Outside any module: go install PKG@VERSION takes Prometheus' own go.mod.
			(cd / && GOFLAGS='' GOBIN=$tmp CGO_ENABLED=0 go install -tags "$PROMETHEUS_TAGS" "${PROMETHEUS%@*}/cmd/prometheus@${PROMETHEUS#*@}")
			mv -T "$tmp" "$dir"
			trap - EXIT
			log "built in $((SECONDS - t0))s: $dir"
		fi
		flock -u 9
	else
		log "cached: $dir"
	fi
	echo "export MCM_PROMETHEUS=$dir/prometheus"
}

case "${1:-all}" in
deps) deps ;;
build) build ;;
all) deps && build ;;
*)
	log "usage: $0 [deps|build]"
	exit 2
	;;
esac
