#!/usr/bin/env bash
# Prepares the cgroup v2 VM test (test/vm): installs qemu and puts a Debian kernel in a
# cache, downloaded once:
#   /var/cache/missing-container-metrics/vm/vmlinuz   (or $MCM_VM_CACHE/vmlinuz)
# The test boots it in qemu with an initramfs of busybox and the exporter.
# Idempotent; needs root (apt). Only what it prints on stderr is progress.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CACHE=${MCM_VM_CACHE:-/var/cache/missing-container-metrics/vm}
log() { printf 'vm/prepare: %s\n' "$*" >&2; }

scripts/install-deps.sh qemu-system-x86

if [[ -s "$CACHE/vmlinuz" ]]; then
	log "kernel cached: $(cat "$CACHE/version" 2>/dev/null || echo "$CACHE/vmlinuz")"
	exit 0
fi
mkdir -p "$CACHE"
# The cloud flavour is small (no hardware drivers), and has cgroup v2 and the
# memory controller built in. Which version is current: the meta package says.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [[ -z "$pkg" ]]; then
	apt-get update -q >&2
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
[[ -n "$pkg" ]] || { log "no linux-image-cloud-amd64 in apt"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt where it may
log "downloading $pkg"
(cd "$tmp" && apt-get download -q "$pkg" >&2)
dpkg-deb -x "$tmp"/*.deb "$tmp/x"
cp "$tmp"/x/boot/vmlinuz-* "$CACHE/vmlinuz.part"
mv "$CACHE/vmlinuz.part" "$CACHE/vmlinuz"
echo "$pkg" >"$CACHE/version"
log "kernel cached: $pkg"
