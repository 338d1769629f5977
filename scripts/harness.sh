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
# everything else goes to stderr. Only processes this harness started (by PID, checked
# against their command line) and container processes inside the harness's own cgroup
# parent are ever signalled.
#
# Environment knobs: MCM_HARNESS_TIMEOUT (seconds a daemon gets to answer, default 30).
set -euo pipefail

HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
SCRIPTS_DIR=$(dirname "$HARNESS")
TIMEOUT=${MCM_HARNESS_TIMEOUT:-30}
POLL=0.1
IMAGE=busybox:test
PAUSE_IMAGE=registry.k8s.io/pause:3.6

log() { printf 'harness: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- dependencies

need_deps() {
	local c missing=()
	for c in containerd ctr dockerd docker runc containerd-shim-runc-v2 busybox; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
		missing+=(busybox-static)
	fi
	if ((${#missing[@]} > 0)); then
		log "missing: ${missing[*]}; running install-deps.sh"
		"$SCRIPTS_DIR/install-deps.sh" --harness >&2
	fi
}

# ---------------------------------------------------------------- harness dir

# resolve_dir [DIR]: sets D, refusing anything that is not a harness dir.
resolve_dir() {
	local d=${1:-${MCM_TEST_HARNESS_DIR:-}}
	[[ -n "$d" ]] || die "no harness dir: give DIR or set MCM_TEST_HARNESS_DIR"
	d=$(realpath -m -- "$d")
	[[ "$(basename -- "$d")" == mcm-harness.* ]] || die "refusing: $d is not a harness dir (mcm-harness.*)"
	D=$d
}

require_dir() {
	[[ -d "$D" && -e "$D/.mcm-harness" ]] || die "no harness at $D"
}

# ---------------------------------------------------------------- processes

now() { date +%s.%N; }
# past DEADLINE: true once the time is past DEADLINE (seconds since the epoch, fractional).
past() { awk -v n="$(now)" -v d="$1" 'BEGIN { exit !(n > d) }'; }
deadline_in() { awk -v n="$(now)" -v s="$1" 'BEGIN { printf "%.3f", n + s }'; }

# alive PID: the process exists and is not a zombie.
alive() {
	local pid=$1 stat
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*") "}
	[[ "${stat%% *}" != Z ]]
}

cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# ours PID: alive, and its command line names the harness dir (guards against PID reuse).
ours() {
	alive "$1" && [[ "$(cmdline "$1")" == *"$D/"* ]]
}

# read_pid FILE: prints the PID in FILE if it is one of ours.
read_pid() {
	local pid
	[[ -s "$1" ]] || return 1
	pid=$(tr -dc '0-9' <"$1")
	ours "$pid" || return 1
	printf '%s\n' "$pid"
}

# wait_gone PID SECONDS
wait_gone() {
	local dl
	dl=$(deadline_in "$2")
	while alive "$1"; do
		past "$dl" && return 1
		sleep "$POLL"
	done
}

# terminate PID WHAT SECONDS: SIGTERM, wait, then SIGKILL.
terminate() {
	local pid=$1 what=$2 secs=$3
	kill -TERM "$pid" 2>/dev/null || return 0
	if ! wait_gone "$pid" "$secs"; then
		log "$what ($pid) still running after ${secs}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || log "$what ($pid) survived SIGKILL"
	fi
}

# ---------------------------------------------------------------- daemons

dk() { env -u DOCKER_CONTEXT -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH docker -H "unix://$D/docker.sock" "$@"; }
ct() { ctr --address "$D/containerd.sock" "$@"; }

containerd_cmd() {
	CMD=(containerd --config "$D/containerd.toml" --root "$D/root" --state "$D/state"
		--address "$D/containerd.sock")
}

dockerd_cmd() {
	CMD=(dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec"
		-H "unix://$D/docker.sock" --pidfile "$D/docker.pid" --containerd "$D/containerd.sock"
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none
		--userland-proxy=false --storage-driver=vfs --exec-opt native.cgroupdriver=cgroupfs)
}

containerd_answers() { timeout 5 ctr --address "$D/containerd.sock" version >/dev/null 2>&1; }
dockerd_answers() { timeout 5 env -u DOCKER_CONTEXT docker -H "unix://$D/docker.sock" version >/dev/null 2>&1; }

containerd_pid() { read_pid "$D/containerd.pid"; }
dockerd_pid() { read_pid "$D/docker.pid" || read_pid "$D/dockerd.launch.pid"; }

# launch NAME: starts daemon NAME (containerd|dockerd) detached, logs appended to $D/NAME.log.
launch() {
	local name=$1 pid
	"${name}_cmd"
	{
		printf '\n=== %s: %s\n' "$(date -Is)" "${CMD[*]}"
	} >>"$D/$name.log"
	# setsid: own session, so no terminal or process-group signal reaches it; stdin/out/err
	# are not the caller's, so `$(harness.sh start)` returns. The subshell execs setsid, which
	# execs the daemon (a non-interactive shell's background job is no group leader), so $!
	# is the daemon's PID.
	(exec setsid "${CMD[@]}" </dev/null >>"$D/$name.log" 2>&1) &
	pid=$!
	case $name in
	containerd) echo "$pid" >"$D/containerd.pid" ;;
	dockerd) echo "$pid" >"$D/dockerd.launch.pid" ;;
	esac
	LAUNCHED=$pid
}

# wait_ready NAME PID
wait_ready() {
	local name=$1 pid=$2 dl
	dl=$(deadline_in "$TIMEOUT")
	until "${name}_answers"; do
		if ! alive "$pid"; then
			tail -n 30 "$D/$name.log" >&2 || true
			die "$name ($pid) exited during start-up; log: $D/$name.log"
		fi
		if past "$dl"; then
			tail -n 30 "$D/$name.log" >&2 || true
			die "$name ($pid) did not answer within ${TIMEOUT}s; log: $D/$name.log"
		fi
		sleep "$POLL"
	done
}

start_daemon() {
	local name=$1 pid
	if pid=$("${name}_pid"); then
		log "$name already running ($pid)"
		wait_ready "$name" "$pid"
		return 0
	fi
	if [[ $name == dockerd ]]; then
		rm -f "$D/docker.pid" # stale after a kill; dockerd refuses to start over a live one
		containerd_answers || log "warning: containerd does not answer; dockerd will wait for it"
	fi
	launch "$name"
	wait_ready "$name" "$LAUNCHED"
	log "$name running ($LAUNCHED)"
	if [[ $name == containerd ]] && pid=$(dockerd_pid); then
		wait_dockerd_reconnected
	fi
}

# A running dockerd reconnects to a restarted containerd with a gRPC back-off; `docker
# version` lists the containerd component only while dockerd reaches containerd.
dockerd_reaches_containerd() {
	timeout 5 env -u DOCKER_CONTEXT docker -H "unix://$D/docker.sock" version \
		--format '{{range .Server.Components}}{{.Name}} {{end}}' 2>/dev/null | grep -qw containerd
}

wait_dockerd_reconnected() {
	local dl
	dl=$(deadline_in "$TIMEOUT")
	until dockerd_reaches_containerd; do
		if past "$dl"; then
			log "warning: dockerd has not reconnected to containerd within ${TIMEOUT}s"
			return 0
		fi
		sleep "$POLL"
	done
	log "dockerd reaches containerd again"
}

stop_daemon() {
	local name=$1 pid secs=20
	if [[ $name == dockerd ]]; then secs=30; fi
	if pid=$("${name}_pid"); then
		log "stopping $name ($pid)"
		terminate "$pid" "$name" "$secs"
	else
		log "$name not running"
	fi
}

kill_daemon() {
	local name=$1 pid
	if pid=$("${name}_pid"); then
		log "killing $name ($pid)"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || die "$name ($pid) survived SIGKILL"
	else
		log "$name not running"
	fi
}

# ---------------------------------------------------------------- cgroups

# cgroup_mounts: "MOUNTPOINT ROOT" for every cgroup (v1) and cgroup2 mount.
cgroup_mounts() {
	awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
	       if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5, $4 }' /proc/self/mountinfo
}

# cg_host_path MOUNTPOINT ROOT CGPATH: where cgroup CGPATH is in that mount ("" if not visible).
cg_host_path() {
	local mnt=$1 root=$2 p=$3
	if [[ $root == / ]]; then
		printf '%s%s\n' "$mnt" "$p"
	elif [[ $p == "$root" || $p == "$root"/* ]]; then
		printf '%s%s\n' "$mnt" "${p#"$root"}"
	fi
}

self_memory_cgroup() {
	local p
	p=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
	[[ -n "$p" ]] || p=$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)
	printf '%s\n' "${p%/}"
}

# The cgroup parent's ancestors that do not exist yet in some hierarchy are recorded, so
# that stop removes them again (runc creates them in hierarchies where we are not nested).
record_cgroup_ancestors() {
	local parent=$1 mnt root a dir
	: >"$D/cgroup-created"
	while read -r mnt root; do
		a=$parent
		while a=${a%/*}; [[ -n "$a" ]]; do
			dir=$(cg_host_path "$mnt" "$root" "$a")
			if [[ -n "$dir" && ! -d "$dir" ]]; then
				printf '%s\n' "$dir" >>"$D/cgroup-created"
			fi
		done
	done < <(cgroup_mounts)
}

# kill_cgroup_procs PARENT: SIGKILLs every process left in PARENT's subtree (container
# processes whose shim is gone), in every hierarchy.
kill_cgroup_procs() {
	local parent=$1 mnt root top dir pid left dl
	dl=$(deadline_in 10)
	while :; do
		left=0
		while read -r mnt root; do
			top=$(cg_host_path "$mnt" "$root" "$parent")
			[[ -n "$top" && -d "$top" ]] || continue
			while IFS= read -r dir; do
				if [[ -w "$dir/freezer.state" ]]; then
					echo THAWED >"$dir/freezer.state" 2>/dev/null || true
				fi
				while read -r pid; do
					[[ -n "$pid" ]] || continue
					left=1
					kill -KILL "$pid" 2>/dev/null || true
				done <"$dir/cgroup.procs" 2>/dev/null || true
			done < <(find "$top" -type d 2>/dev/null)
		done < <(cgroup_mounts)
		((left == 0)) && return 0
		if past "$dl"; then
			log "processes still left in cgroup $parent"
			return 1
		fi
		sleep "$POLL"
	done
}

remove_cgroups() {
	local parent=$1 mnt root top dir ok=0
	while read -r mnt root; do
		top=$(cg_host_path "$mnt" "$root" "$parent")
		[[ -n "$top" && -d "$top" ]] || continue
		while IFS= read -r dir; do
			rmdir "$dir" 2>/dev/null || { log "cannot rmdir $dir"; ok=1; }
		done < <(find "$top" -depth -type d 2>/dev/null)
	done < <(cgroup_mounts)
	if [[ -s "$D/cgroup-created" ]]; then
		# deepest first
		while IFS= read -r dir; do
			if [[ -d "$dir" ]]; then
				rmdir "$dir" 2>/dev/null || log "left $dir (not empty, or in use)"
			fi
		done < <(awk '{ print length($0) "\t" $0 }' "$D/cgroup-created" | sort -rn | cut -f2-)
	fi
	return "$ok"
}

# ---------------------------------------------------------------- images

build_rootfs() {
	local r=$D/rootfs bb a applets
	bb=$(command -v busybox)
	if ldd "$bb" >/dev/null 2>&1; then die "$bb is not static (install busybox-static)"; fi
	mkdir -p "$r"/{bin,etc,tmp,proc,sys,dev,root,var/tmp}
	chmod 1777 "$r/tmp" "$r/var/tmp"
	cp "$bb" "$r/bin/busybox"
	applets=" $("$r/bin/busybox" --list | tr '\n' ' ') "
	# A handful of applets (linking all ~400 takes seconds); `busybox APPLET` reaches the rest.
	for a in sh ash sleep usleep dd cat echo printf true false kill killall pkill pidof ps top \
		ls mkdir rmdir rm cp mv ln touch head tail grep egrep sed awk wc tr cut sort uniq tee \
		env id date hostname uname whoami yes seq test '[' '[[' stat find xargs timeout nproc \
		free uptime mount umount chmod chown du df basename dirname readlink realpath sync \
		od hexdump md5sum sha256sum base64 tar gzip gunzip vi less more which nc wget ip; do
		if [[ "$applets" == *" $a "* ]]; then ln -s busybox "$r/bin/$a"; fi
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
}

import_images() {
	tar -C "$D/rootfs" -c . | dk import --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
	# For containerd's CRI plugin (namespace k8s.io), which never pulls: the test image and a
	# sandbox ("pause") image under the name the plugin asks for.
	tar -C "$D/rootfs" -c . | dk import --change 'ENTRYPOINT ["/bin/sleep", "inf"]' - "$PAUSE_IMAGE" >/dev/null
	dk save "$IMAGE" "$PAUSE_IMAGE" | ct -n k8s.io images import - >/dev/null
}

# ---------------------------------------------------------------- commands

write_env() {
	cat <<EOF
export MCM_TEST_HARNESS_DIR=$D
export MCM_TEST_DOCKER_HOST=unix://$D/docker.sock
export MCM_TEST_CONTAINERD_ADDRESS=$D/containerd.sock
export MCM_TEST_CGROUP_PARENT=$PARENT
export MCM_TEST_IMAGE=$IMAGE
export MCM_TEST_ROOTFS=$D/rootfs
export MCM_TEST_RUNC_ROOT=$D/runc
export MCM_TEST_HARNESS=$HARNESS
EOF
}

start_failed() {
	if (($1 != 0)); then
		log "start failed; cleaning up $D"
		cmd_stop "$D" || true
	fi
}

cmd_start() {
	local t0 self rnd
	t0=$(now)
	need_deps
	D=$(mktemp -d /tmp/mcm-harness.XXXXXX)
	chmod 0711 "$D"
	: >"$D/.mcm-harness"
	log "harness dir: $D"
	# If anything below fails or start is interrupted, clean up what was started.
	trap 'start_failed $?' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	self=$(self_memory_cgroup)
	rnd=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
	PARENT=$self/mcm-test-$rnd
	printf '%s\n' "$PARENT" >"$D/cgroup-parent"
	record_cgroup_ancestors "$PARENT"
	record_run_dirs

	cat >"$D/containerd.toml" <<EOF
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = "$D/runc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$D/opt"
EOF
	# Only in the file (no such flag): keeps dockerd's trust key out of /etc/docker. Tests may
	# add keys that no flag above sets (e.g. "live-restore": true) and restart dockerd.
	printf '{\n  "deprecated-key-path": "%s/key.json"\n}\n' "$D" >"$D/daemon.json"

	start_daemon containerd
	start_daemon dockerd
	build_rootfs
	import_images

	write_env >"$D/env"
	trap - EXIT INT TERM
	log "started in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s: $D"
	write_env
}

# best_effort SECONDS CMD...: runs CMD with a timeout, ignoring failure.
best_effort() {
	local secs=$1
	shift
	timeout "$secs" "$@" >/dev/null 2>&1 || true
}

remove_docker_containers() {
	local ids
	dockerd_answers || return 0
	ids=$(timeout 10 env -u DOCKER_CONTEXT docker -H "unix://$D/docker.sock" ps -aq 2>/dev/null) || return 0
	[[ -n "$ids" ]] || return 0
	log "removing docker containers: $(echo "$ids" | wc -l)"
	# shellcheck disable=SC2086 # one word per id
	best_effort 30 env -u DOCKER_CONTEXT docker -H "unix://$D/docker.sock" rm -f -v $ids
}

remove_containerd_containers() {
	local ns id
	containerd_answers || return 0
	for ns in $(timeout 5 ctr --address "$D/containerd.sock" namespaces ls -q 2>/dev/null || true); do
		for id in $(timeout 5 ctr --address "$D/containerd.sock" -n "$ns" containers ls -q 2>/dev/null || true); do
			best_effort 10 ctr --address "$D/containerd.sock" -n "$ns" tasks kill -a -s SIGKILL "$id"
			best_effort 10 ctr --address "$D/containerd.sock" -n "$ns" tasks delete -f "$id"
			best_effort 10 ctr --address "$D/containerd.sock" -n "$ns" containers delete "$id"
		done
	done
}

kill_leftover_shims() {
	local p pid c
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		{ read -r c <"$p/comm"; } 2>/dev/null || continue
		[[ "$c" == containerd-shim* ]] || continue
		ours "$pid" || continue
		log "killing leftover shim $pid"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || log "shim $pid survived SIGKILL"
	done
}

# /run/containerd and /run/docker: containerd 1.6's shims put their sockets in
# /run/containerd/s whatever containerd's --state, `ctr run` without --runc-root keeps runc
# state in /run/containerd/runc and without --null-io its FIFOs in /run/containerd/fifo, and
# dockerd makes /run/docker/plugins. Which of these did not exist before start is recorded,
# so that stop removes them again once empty.
RUN_DIRS=(/run/containerd /run/containerd/s /run/containerd/runc /run/containerd/fifo
	/run/docker /run/docker/plugins)

record_run_dirs() {
	local d
	: >"$D/run-dirs-created"
	for d in "${RUN_DIRS[@]}"; do
		if [[ ! -e "$d" ]]; then printf '%s\n' "$d" >>"$D/run-dirs-created"; fi
	done
}

# any_proc_named PREFIX: some live (not zombie) process's name starts with PREFIX.
any_proc_named() {
	local p c
	for p in /proc/[0-9]*; do
		{ read -r c <"$p/comm"; } 2>/dev/null || continue
		[[ "$c" == "$1"* ]] && alive "${p#/proc/}" && return 0
	done
	return 1
}

# Removes what this harness's containers left in /run/containerd: shim sockets (named in
# our task bundles) and runc state dirs that name our harness dir; then the recorded dirs
# if empty. Nothing else there is touched.
clean_run_dirs() {
	local f a ns id st d base
	for f in "$D"/state/io.containerd.runtime.v2.task/*/*/address; do
		[[ -f "$f" ]] || continue
		a=$(cat "$f")
		a=${a#unix://}
		if [[ "$a" == /run/containerd/s/* && -S "$a" ]]; then rm -f -- "$a"; fi
		id=$(basename "$(dirname "$f")")
		ns=$(basename "$(dirname "$(dirname "$f")")")
		st=/run/containerd/runc/$ns/$id
		if [[ -f "$st/state.json" ]] && grep -qF "$D/" "$st/state.json"; then rm -rf -- "$st"; fi
	done
	[[ -s "$D/run-dirs-created" ]] || return 0
	for base in /run/containerd/runc /run/containerd/fifo; do
		grep -qxF "$base" "$D/run-dirs-created" || continue
		for d in "$base"/*/; do
			if [[ -d "$d" ]]; then rmdir "$d" 2>/dev/null || true; fi
		done
	done
	# deepest first; skipped while any other shim or dockerd might create entries there
	if any_proc_named containerd-shim; then return 0; fi
	while IFS= read -r d; do
		if [[ -d "$d" ]]; then rmdir "$d" 2>/dev/null || log "left $d (not empty)"; fi
	done < <(awk '{ print length($0) "\t" $0 }' "$D/run-dirs-created" | sort -rn | cut -f2-)
}

unmount_all() {
	local m
	# mount points under $D, deepest first
	while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
	done < <(awk -v d="$D" '$5 == d || index($5, d "/") == 1 { print length($5) "\t" $5 }' /proc/self/mountinfo |
		sort -rn | cut -f2-)
}

cmd_stop() {
	local parent="" rc=0 t0
	t0=$(now)
	resolve_dir "${1:-}"
	if [[ ! -d "$D" ]]; then
		log "nothing at $D (already stopped?)"
		return 0
	fi
	if [[ -s "$D/cgroup-parent" ]]; then parent=$(cat "$D/cgroup-parent"); fi

	remove_docker_containers
	remove_containerd_containers
	stop_daemon dockerd
	stop_daemon containerd
	kill_leftover_shims
	if [[ -n "$parent" ]]; then
		kill_cgroup_procs "$parent" || rc=1
	fi
	unmount_all
	if [[ -n "$parent" ]]; then
		remove_cgroups "$parent" || rc=1
	fi
	clean_run_dirs
	rm -rf --one-file-system -- "$D" || rc=1
	if [[ -e "$D" ]]; then
		log "could not remove $D"
		rc=1
	fi
	log "stopped in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s: $D"
	return "$rc"
}

cmd_status() {
	local name pid
	resolve_dir "${1:-}"
	require_dir
	for name in containerd dockerd; do
		if pid=$("${name}_pid"); then
			if "${name}_answers"; then echo "$name: running ($pid), answers"; else echo "$name: running ($pid), not answering"; fi
		else
			echo "$name: not running"
		fi
	done
}

usage() {
	sed -n '2,/^set -euo/p' "$HARNESS" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	start) cmd_start ;;
	stop) cmd_stop "${1:-}" ;;
	status) cmd_status "${1:-}" ;;
	start-dockerd | start-containerd | stop-dockerd | stop-containerd | kill-dockerd | kill-containerd)
		resolve_dir "${1:-}"
		require_dir
		"${cmd%%-*}_daemon" "${cmd#*-}"
		;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
