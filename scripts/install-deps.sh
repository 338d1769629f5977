#!/usr/bin/env bash
# Installs the Debian packages that the real-runtime test harness (scripts/harness.sh)
# and the end-to-end tests need: a Docker daemon, containerd, runc, a static busybox
# (for test images), Prometheus (server and promtool), make (the image test
# builds through the Makefile) and systemd (systemd-analyze checks the unit).
#
# Usage: scripts/install-deps.sh [EXTRA_PACKAGE...]
#   e.g. scripts/install-deps.sh shellcheck
#
# Idempotent: packages that are already installed are skipped, and nothing is
# downloaded when everything is there. Must run as root (Debian/Ubuntu, apt).
#
# Installing docker.io or containerd must not leave a system daemon running at the
# default paths (/var/run/docker.sock, /run/containerd): while installing, a
# policy-rc.d that forbids starting services is put in place (unless one exists
# already), so the packages' maintainer scripts start nothing.
set -euo pipefail

PACKAGES=(docker.io containerd runc busybox-static prometheus make systemd "$@")

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
