#!/usr/bin/env bash
# Prepares the cgroup v2 VM tests (test/vm): installs qemu (its virtiofsd too)
# and puts a Debian kernel and a few of its modules in a cache, downloaded once:
#   /var/cache/missing-container-metrics/vm/vmlinuz        (or $MCM_VM_CACHE/...)
#   /var/cache/missing-container-metrics/vm/modules/*.ko   virtio-pci, virtio-blk, virtiofs, overlay
# The tests boot it in qemu with an initramfs of busybox and the exporter; the
# runtimes test also shares the host's root file system read-only into the
# guest (virtiofs, with a tmpfs overlay), so that the guest runs the containerd,
# runc, dockerd and systemd that Debian installed here. The cloud kernel has
# these drivers as modules only, so the initramfs loads them from the cache.
# Idempotent; needs root (apt). Only what it prints on stderr is progress.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CACHE=${MCM_VM_CACHE:-/var/cache/missing-container-metrics/vm}
# In load order (each after what it needs); the test reads the same list from
# modules/order.
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk fuse virtiofs overlay)
log() { printf 'vm/prepare: %s\n' "$*" >&2; }

scripts/install-deps.sh qemu-system-x86

cached() {
	local m
	[[ -s "$CACHE/vmlinuz" && -s "$CACHE/modules/order" ]] || return 1
	for m in "${MODULES[@]}"; do
		[[ -s "$CACHE/modules/$m.ko" ]] || return 1
	done
}
if cached; then
	log "kernel cached: $(cat "$CACHE/version" 2>/dev/null || echo "$CACHE/vmlinuz")"
	exit 0
fi
mkdir -p "$(dirname "$CACHE")"
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
# The kernel and its modules come from the same package, or the modules do not load.
mkdir -p "$tmp/cache/modules"
cp "$tmp"/x/boot/vmlinuz-* "$tmp/cache/vmlinuz"
for m in "${MODULES[@]}"; do
	ko=$(find "$tmp"/x/lib/modules -name "$m.ko" -print -quit)
	[[ -n "$ko" ]] || { log "$pkg has no module $m"; exit 1; }
	cp "$ko" "$tmp/cache/modules/"
done
printf '%s\n' "${MODULES[@]}" >"$tmp/cache/modules/order"
echo "$pkg" >"$tmp/cache/version"
# Replace the whole cache at once: a test never sees a kernel with another's modules.
rm -rf "$CACHE.old"
if [[ -e "$CACHE" ]]; then mv "$CACHE" "$CACHE.old"; fi
mv "$tmp/cache" "$CACHE"
rm -rf "$CACHE.old"
log "kernel cached: $pkg"
