package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// What cgroup paths, cgroupfs's counter files and /proc say: which
// container a path names, a process's cgroup, and the runtime of a
// container from its shim. The parsers take bytes, so that tests feed them
// fixtures; the few reads that feed them are here too.

// ContainerCgroup is a container's memory cgroup as the kernel reader found
// it, by its path or through a runtime's main pid, and the container it holds
// (the kernel's view of a store.Cgroup).
type ContainerCgroup struct {
	Runtime string // a guess where the path does not say (a bare id); see guessRuntime
	ID      string
	// Dir is the container's own cgroup: the path up to the component that
	// names it. Deeper cgroups (a container's own sub-cgroups, crun's
	// "container" leaf, the containers of a Docker in the container) belong
	// to it.
	Dir string
	// Sure is false when the runtime is only a guess: a bare id, which
	// Docker with --cgroup-parent, dockershim and containerd with the
	// cgroupfs driver all write.
	Sure bool
	// Owner is, for a cgroup found through the main pid a runtime gave,
	// that runtime's container; nil for one found by its path.
	Owner *store.Meta
	// PodUID is the Kubernetes pod's UID where the path names it: the
	// kubelet's pod<UID> (cgroupfs) or kubepods-...-pod<UID>.slice (systemd,
	// with _ for -). It joins a container only the kernel knows to its pod.
	PodUID string
}

// key names the container among those tracked: its runtime's key if it was
// found through its pid, else its (perhaps guessed) runtime and id.
func (c ContainerCgroup) key() string {
	if c.Owner != nil {
		return c.Owner.Key()
	}
	return store.Key(c.Runtime, "", c.ID)
}

// ParseContainerPath recognises the container of a cgroup path (from the
// root of the hierarchy, as /proc/PID/cgroup and the kernel log write it),
// only where runtimes make containers' cgroups:
//
//	/docker/ID, /system.slice/docker-ID.scope                          Docker
//	/kubepods/[QOS/]podUID/ID                                          kubelet, cgroupfs driver (runtime guessed)
//	/kubepods.slice/.../cri-containerd-ID.scope (crio-, docker-)       kubelet, systemd driver
//	/kubepods/.../crio-ID                                              CRI-O, cgroupfs driver
//	/machine.slice/...libpod-ID.scope[/container], /libpod_parent/...libpod-ID   Podman (as root)
//	PARENT/.../ID (or any of the forms above) for a PARENT in parents: Docker's --cgroup-parent, the kubelet's --cgroup-root
//
// ID is 64 lowercase hex digits. Anyone with a cgroup of their own to make
// children in (a delegated cgroup v2 subtree, a rootless runtime) can name
// a directory like a container, so a path elsewhere names none. The
// outermost component that names a container wins: what is inside a
// container's cgroup is the container's, whatever it is called. The
// monitors' own cgroups (crio-conmon-ID.scope, libpod-conmon-ID.scope) are
// no containers.
func ParseContainerPath(path string, parents []string) (ContainerCgroup, bool) {
	if !strings.HasPrefix(path, "/") {
		return ContainerCgroup{}, false
	}
	parts := strings.Split(path, "/")
	for i := 1; i < len(parts); i++ {
		c, ok := parseComponent(parts[i], parts[:i])
		if ok && trusted(parts[:i], parts[i], parents) {
			c.Dir = strings.Join(parts[:i+1], "/")
			c.PodUID = podUID(parts[:i])
			return c, true
		}
	}
	return ContainerCgroup{}, false
}

// trusted reports whether runtimes make containers' cgroups named name in
// the cgroup parent (the path's components before it).
func trusted(parent []string, name string, parents []string) bool {
	p := strings.Join(parent, "/")
	if p == "" {
		p = "/"
	}
	for _, x := range parents {
		if x = strings.TrimSuffix(x, "/"); x != "" && (p == x || strings.HasPrefix(p, x+"/")) {
			return true
		}
	}
	kubepods := strings.HasPrefix(p, "/kubepods/") || strings.HasPrefix(p, "/kubepods.slice/")
	switch {
	case strings.HasPrefix(name, "docker-"):
		return p == "/system.slice" || kubepods
	case strings.HasPrefix(name, "cri-containerd-"), strings.HasPrefix(name, "crio-"):
		return kubepods
	case strings.HasPrefix(name, "libpod-"):
		return p == "/machine.slice" || strings.HasPrefix(p, "/machine.slice/") || p == "/libpod_parent" || strings.HasPrefix(p, "/libpod_parent/")
	}
	return p == "/docker" || kubepods // a bare id
}

// runtimeParents are the cgroups in which, or below which, runtimes make
// containers' cgroups without a --kernel.cgroup-parent: trusted's cases.
var runtimeParents = []string{"/docker", "/system.slice", "/kubepods", "/kubepods.slice", "/machine.slice", "/libpod_parent"}

// mayHoldContainers reports whether a container's cgroup, as
// ParseContainerPath recognises one, can be the cgroup at path or below it:
// path is a parent of containers' cgroups (runtimeParents, or one of
// parents), below one, or on the way to one. The reader walks and watches
// no other cgroup: on a shared host other services make and remove cgroups
// all the time, and none of them can be a container's.
func mayHoldContainers(path string, parents []string) bool {
	for _, list := range [][]string{runtimeParents, parents} {
		for _, x := range list {
			if x = strings.TrimSuffix(x, "/"); x != "" && (within(path, x) || within(x, path)) {
				return true
			}
		}
	}
	return false
}

// parseNSpid reads the NSpid line of /proc/PID/status ("NSpid:\t4242\t1"):
// whether the process is pid 1 of its innermost pid namespace; nil where
// the line is missing or has one pid only (the host's namespace).
func parseNSpid(status []byte) *bool {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return nil
		}
		init := f[len(f)-1] == "1"
		return &init
	}
	return nil
}

// podUID finds the kubelet's pod cgroup among a container's parents.
func podUID(parents []string) string {
	if len(parents) == 0 {
		return ""
	}
	p := parents[len(parents)-1]
	if uid, ok := strings.CutPrefix(p, "pod"); ok && slices.ContainsFunc(parents, func(s string) bool { return strings.HasPrefix(s, "kubepods") }) {
		return uid
	}
	if base, ok := strings.CutSuffix(p, ".slice"); ok && strings.HasPrefix(base, "kubepods-") {
		if i := strings.LastIndex(base, "-pod"); i >= 0 {
			return strings.ReplaceAll(base[i+len("-pod"):], "_", "-")
		}
	}
	return ""
}

func parseComponent(name string, parents []string) (ContainerCgroup, bool) {
	base, scope := strings.CutSuffix(name, ".scope")
	for _, p := range []struct{ prefix, runtime string }{
		{"docker-", store.RuntimeDocker},
		{"cri-containerd-", store.RuntimeContainerd},
		{"crio-", store.RuntimeCRIO},
		{"libpod-", store.RuntimePodman},
	} {
		if id, ok := strings.CutPrefix(base, p.prefix); ok && isID(id) {
			if !scope && p.runtime != store.RuntimeCRIO && p.runtime != store.RuntimePodman {
				return ContainerCgroup{}, false // only CRI-O and Podman write these without systemd
			}
			return ContainerCgroup{Runtime: p.runtime, ID: id, Sure: true}, true
		}
	}
	if scope || !isID(name) {
		return ContainerCgroup{}, false
	}
	parent := ""
	if len(parents) > 0 {
		parent = parents[len(parents)-1]
	}
	switch {
	case parent == "docker" && len(parents) == 2:
		return ContainerCgroup{Runtime: store.RuntimeDocker, ID: name, Sure: true}, true
	case strings.HasPrefix(parent, "pod") && slices.ContainsFunc(parents, func(p string) bool { return strings.HasPrefix(p, "kubepods") }):
		return ContainerCgroup{Runtime: store.RuntimeContainerd, ID: name}, true
	}
	return ContainerCgroup{Runtime: store.RuntimeDocker, ID: name}, true
}

// isID reports whether s is a full container id: 64 lowercase hex digits.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseProcCgroup returns the memory cgroup of a /proc/PID/cgroup file: the
// path of the v1 hierarchy whose controllers include memory, else the v2
// ("0::") path.
func ParseProcCgroup(b []byte) (string, error) {
	var v2 string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(path, "/") {
			continue
		}
		if id == "0" && ctrls == "" {
			// The kernel marks a removed cgroup v2 " (deleted)": a process
			// that exits after its cgroup was removed, as systemd removes a
			// container's scope at once when the last of a group kill's
			// members is gone, still names it.
			v2 = strings.TrimSuffix(path, " (deleted)")
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "memory" {
				return path, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if v2 == "" {
		return "", errors.New("no memory cgroup in /proc/PID/cgroup")
	}
	return v2, nil
}

// Counters are a memory cgroup's OOM counters.
type Counters struct {
	Kills      uint64 // oom_kill: processes the OOM killer killed in the cgroup
	GroupKills uint64 // oom_group_kill (cgroup v2): memory.oom.group kills
	HasGroup   bool   // the kernel counts group kills (cgroup v2, a kernel with the field: 6.1 has it)
}

// ParseOOMControl reads cgroup v1's memory.oom_control.
func ParseOOMControl(b []byte) (Counters, error) {
	v, ok, err := field(b, "oom_kill")
	if err != nil {
		return Counters{}, fmt.Errorf("memory.oom_control: %w", err)
	}
	if !ok {
		return Counters{}, errors.New("memory.oom_control has no oom_kill (Linux 4.13 and later)")
	}
	return Counters{Kills: v}, nil
}

// ParseMemoryEvents reads cgroup v2's memory.events.
func ParseMemoryEvents(b []byte) (Counters, error) {
	v, ok, err := field(b, "oom_kill")
	if err != nil {
		return Counters{}, fmt.Errorf("memory.events: %w", err)
	}
	if !ok {
		return Counters{}, errors.New("memory.events has no oom_kill")
	}
	g, hasGroup, err := field(b, "oom_group_kill")
	if err != nil {
		return Counters{}, fmt.Errorf("memory.events: %w", err)
	}
	return Counters{Kills: v, GroupKills: g, HasGroup: hasGroup}, nil
}

// field finds "name value" in a flat keyed file. It copies nothing: it
// runs at every reading of a counter.
func field(b []byte, name string) (uint64, bool, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte{' '})
		if !ok || string(k) != name {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", name, err)
		}
		return n, true, nil
	}
	return 0, false, nil
}

// readFile reads a small file of cgroupfs or procfs whole, as os.ReadFile
// does but in three system calls instead of up to eight: no fstat for its
// size, no registration with the runtime's poller, which cgroupfs's files
// accept (they are pollable) and which a read that never blocks does not
// need, and no read of the end where the first read was short: the kernel
// fills a read of these files (seq_file, a page at least) as far as they
// go, and a regular file's read is short only at its end.
func readFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	// Most of these files are a few dozen bytes: read on the stack, and
	// kept in a slice of their size (a walk reads three of each container's).
	var first [512]byte
	b := first[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0, len(b) == 0 && n < cap(b): // the end, or the whole file at once
			return bytes.Clone(b[:len(b)+n]), nil
		}
		b = b[:len(b)+n]
	}
}

// Hierarchy is the mounted memory cgroup hierarchy.
type Hierarchy struct {
	Root string // where its root cgroup is mounted
	V2   bool
}

// counterFile is the file that holds the OOM counters of one cgroup.
func (h Hierarchy) counterFile() string {
	if h.V2 {
		return "memory.events"
	}
	return "memory.oom_control"
}

func (h Hierarchy) parse(b []byte) (Counters, error) {
	if h.V2 {
		return ParseMemoryEvents(b)
	}
	return ParseOOMControl(b)
}

// FindHierarchy finds the memory hierarchy under sysfs (/sys, or /host/sys
// in a container): v1 at fs/cgroup/memory, v2 at fs/cgroup (unified) or
// fs/cgroup/unified (hybrid) where it has the memory controller.
func FindHierarchy(sysfs string) (Hierarchy, error) {
	base := filepath.Join(sysfs, "fs", "cgroup")
	if _, err := os.Stat(filepath.Join(base, "memory", "memory.oom_control")); err == nil {
		return Hierarchy{Root: filepath.Join(base, "memory")}, nil
	}
	for _, dir := range []string{base, filepath.Join(base, "unified")} {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err == nil && hasWord(string(b), "memory") {
			return Hierarchy{Root: dir, V2: true}, nil
		}
	}
	return Hierarchy{}, fmt.Errorf("no memory cgroup hierarchy under %s (neither v1 memory/ nor v2 with the memory controller)", base)
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// procCgroup reads the memory cgroup of a live process.
func procCgroup(procfs string, pid int) (string, error) {
	b, err := readFile(filepath.Join(procfs, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	return ParseProcCgroup(b)
}

// guessRuntime tells which runtime runs the container in the cgroup dir
// from the command line of its main process's parent, the runtime's shim:
// Docker's containerd-shim runs in containerd namespace "moby", the CRI's in
// "k8s.io"; CRI-O and Podman use conmon. procfs is where /proc is.
func guessRuntime(procfs, dir string) (string, bool) {
	b, err := readFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return "", false
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	pid, err := strconv.Atoi(first)
	if err != nil {
		return "", false
	}
	stat, err := readFile(filepath.Join(procfs, strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", false
	}
	ppid, ok := parentPid(stat)
	if !ok {
		return "", false
	}
	cmd, err := readFile(filepath.Join(procfs, strconv.Itoa(ppid), "cmdline"))
	if err != nil {
		return "", false
	}
	return runtimeOfShim(cmd)
}

// parentPid reads the ppid from /proc/PID/stat ("PID (COMM) S PPID ..."; COMM may hold anything).
func parentPid(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// runtimeOfShim tells the runtime from a shim's NUL-separated command line.
func runtimeOfShim(cmdline []byte) (string, bool) {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) == 0 {
		return "", false
	}
	prog := filepath.Base(args[0])
	switch {
	case strings.HasPrefix(prog, "containerd-shim"):
		for i, a := range args {
			if (a == "-namespace" || a == "--namespace") && i+1 < len(args) {
				if args[i+1] == "moby" {
					return store.RuntimeDocker, true
				}
				return store.RuntimeContainerd, true
			}
		}
		return store.RuntimeContainerd, true
	case prog == "conmon":
		for _, a := range args {
			if strings.Contains(a, "libpod") || strings.Contains(a, "podman") {
				return store.RuntimePodman, true
			}
		}
		return store.RuntimeCRIO, true
	}
	return "", false
}
