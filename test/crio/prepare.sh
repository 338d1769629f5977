#!/usr/bin/env bash
# Prepares the CRI-O tests: installs Debian's conmon, runc and podman (which loads
# the test images into CRI-O's storage), and builds CRI-O from its Go module
# (test/crio/build, a module of its own) with its namespace pinner pinns, into a
# cache directory named by CRI-O's version and a hash of what decides the binaries
# (under $MCM_CRIO_CACHE, default /var/cache/missing-container-metrics/crio):
#   v1.34.0-<hash>/crio, pinns
# Cold (an empty Go build cache): about 9 minutes of CPU (401 s user, 120 s system;
# 36 minutes on a 2-core machine at load 30 to 45, niced, as scripts/test.sh runs it);
# cached, well under a second. CRI-O is not packaged for Debian 12.
#
# Usage: test/crio/prepare.sh [deps|build]   (default: both)
#   deps   only the Debian packages (apt; root)
#   build  only the binaries; prints `export MCM_CRIO_BIN_DIR=<dir>` on stdout,
#          for eval and for the tests
# Idempotent; concurrent runs wait for each other. Only stdout is the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CACHE=${MCM_CRIO_CACHE:-/var/cache/missing-container-metrics/crio}
MODULE=test/crio/build
# CRI-O's own build tags (its Makefile) for what Debian 12 has: libseccomp, no
# btrfs headers, no ostree, no gpgme (signatures checked in Go).
TAGS=containers_image_ostree_stub,containers_image_openpgp,seccomp,exclude_graphdriver_btrfs,btrfs_noversion
LDFLAGS="-s -w"
# pinns/Makefile's flags.
PINNS_CFLAGS="-std=c99 -Os -Wall -Wextra -static"
log() { printf 'crio/prepare: %s\n' "$*" >&2; }

deps() {
	# gcc and libseccomp-dev build CRI-O (cgo) and pinns; podman fills its storage.
	scripts/install-deps.sh conmon runc podman gcc libc6-dev libseccomp-dev pkg-config
}

build() {
	local version src hash dir
	version=$(cd "$MODULE" && go list -m -f '{{.Version}}' github.com/cri-o/cri-o)
	src=$(cd "$MODULE" && go mod download -json github.com/cri-o/cri-o | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	# The module's files, the flags, the Go toolchain and the C compiler decide the binaries.
	hash=$( (cd "$MODULE" && cat go.mod go.sum && echo "$TAGS $LDFLAGS $PINNS_CFLAGS" && go version && cc --version | head -1) | sha256sum | cut -c1-12)
	dir=$CACHE/$version-$hash
	if [[ -x "$dir/crio" && -x "$dir/pinns" ]]; then
		log "cached: $dir"
		echo "export MCM_CRIO_BIN_DIR=$dir"
		return
	fi
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9 # another run may be building the same binaries; then they are there after the wait
	if [[ ! -x "$dir/crio" || ! -x "$dir/pinns" ]]; then
		log "building CRI-O $version into $dir (cold: about 9 minutes of CPU)"
		tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
		chmod 0755 "$tmp"
		trap 'rm -rf "$tmp"' EXIT
		local t0=$SECONDS
		(cd "$MODULE" && CGO_ENABLED=1 go build -tags "$TAGS" -ldflags "$LDFLAGS" -o "$tmp/crio" github.com/cri-o/cri-o/cmd/crio)
		# pinns (C) keeps a pod's namespaces open; CRI-O's pinns/Makefile, without make.
		# shellcheck disable=SC2086 # the flags are words
		cc $PINNS_CFLAGS -o "$tmp/pinns" "$src"/pinns/src/*.c
		mv -T "$tmp" "$dir"
		trap - EXIT
		log "built in $((SECONDS - t0))s: $dir"
	fi
	flock -u 9
	echo "export MCM_CRIO_BIN_DIR=$dir"
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
