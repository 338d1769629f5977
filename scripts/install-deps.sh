#!/usr/bin/env bash
# Installs the Debian packages that the tests need. The real-runtime harness
# (scripts/harness.sh) and the demo need only a Docker daemon, containerd, runc, a
# static busybox (for test images) and Podman (with conmon, and catatonit for its pods); the test command also Prometheus (server and
# promtool), make (the image tests build through the Makefile), systemd
# (systemd-analyze checks the unit), qemu-user-static (the arm64 binary runs under
# it), shellcheck (actionlint checks the workflows' scripts with it), curl (the
# chart's install notes are run) and chromium (the kill page is read in a real
# headless browser).
#
# Usage: scripts/install-deps.sh [--harness] [EXTRA_PACKAGE...]
#   --harness: the harness's packages only, e.g. scripts/install-deps.sh --harness curl
#
# Idempotent: packages that are already installed are skipped, and nothing is
# downloaded when everything is there. Must run as root (Debian/Ubuntu, apt).
#
# Installing docker.io or containerd must not leave a system daemon running at the
# default paths (/var/run/docker.sock, /run/containerd): while installing, a
# policy-rc.d that forbids starting services is put in place (unless one exists
# already), so the packages' maintainer scripts start nothing.
set -euo pipefail

HARNESS_PACKAGES=(docker.io containerd runc busybox-static podman conmon catatonit)
TEST_PACKAGES=(prometheus make systemd qemu-user-static shellcheck curl chromium)
if [[ "${1:-}" == --harness ]]; then
	shift
	PACKAGES=("${HARNESS_PACKAGES[@]}" "$@")
else
	PACKAGES=("${HARNESS_PACKAGES[@]}" "${TEST_PACKAGES[@]}" "$@")
fi

log() { printf 'install-deps: %s\n' "$*" >&2; }

is_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
	is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	log "all packages already installed: ${PACKAGES[*]}"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	log "must run as root to install: ${missing[*]}"
	exit 1
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=""
cleanup() {
	if [[ -n "$created_policy" ]]; then
		rm -f "$POLICY"
	fi
}
trap cleanup EXIT

if [[ ! -e "$POLICY" ]]; then
	# 101 = "action forbidden": invoke-rc.d and deb-systemd-invoke start no service.
	printf '#!/bin/sh\n# temporary, from install-deps.sh\nexit 101\n' >"$POLICY"
	chmod 0755 "$POLICY"
	created_policy=1
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_SUSPEND=1 # needrestart, where installed, would offer to restart services
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2

for p in "${missing[@]}"; do
	if ! is_installed "$p"; then
		log "package $p is still not installed"
		exit 1
	fi
done
log "done"
