package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	dir  string // where it is mounted
	root string // the cgroup that is its root in this mount namespace
	v2   bool
	opts string // its super options (v1: the controllers)
}

// cgroupMounts lists every cgroup (v1) and cgroup2 mount of this process.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		ms = append(ms, cgroupMount{dir: unescapeMount(fields[4]), root: unescapeMount(fields[3]),
			v2: fstype == "cgroup2", opts: fields[sep+3]})
	}
	return ms, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hostPath is where cgroup p is in this mount ("" if the mount does not show it).
func (m cgroupMount) hostPath(p string) string {
	switch {
	case m.root == "/":
		return filepath.Join(m.dir, p)
	case p == m.root || strings.HasPrefix(p, m.root+"/"):
		return filepath.Join(m.dir, strings.TrimPrefix(p, m.root))
	}
	return ""
}

// selfMemoryCgroup is this process's cgroup in the memory hierarchy (v1), or
// its cgroup v2 path.
func selfMemoryCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var v2 string
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return strings.TrimSuffix(parts[2], "/"), nil
			}
		}
		if parts[0] == "0" {
			v2 = strings.TrimSuffix(parts[2], "/")
		}
	}
	return v2, nil
}

// makeCgroup makes cgroup p in every hierarchy (the kubelet wants its
// cgroupRoot in each one it uses), and records every directory it made.
func (h *Harness) makeCgroup(p string) error {
	ms, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range ms {
		dir := m.hostPath(p)
		if dir == "" {
			continue
		}
		var made []string
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(d); err == nil || d == m.dir {
				break
			}
			made = append(made, d)
		}
		for i := len(made) - 1; i >= 0; i-- {
			d := made[i]
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			h.mu.Lock()
			h.rec.CreatedCgroups = append(h.rec.CreatedCgroups, d)
			h.mu.Unlock()
			// A new cpuset cgroup has no CPUs and memory nodes: no process
			// could join it or its children until it has its parent's.
			if strings.Contains(","+m.opts+",", ",cpuset,") {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if v, err := os.ReadFile(filepath.Join(filepath.Dir(d), f)); err == nil {
						_ = os.WriteFile(filepath.Join(d, f), v, 0o644)
					}
				}
			}
		}
	}
	return h.save()
}

// cgroupDirs lists the directories of cgroup p's subtree in every hierarchy.
func cgroupDirs(p string) ([]string, error) {
	ms, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, m := range ms {
		top := m.hostPath(p)
		if top == "" {
			continue
		}
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	return dirs, nil
}

// killCgroup SIGKILLs every process left in cgroup p's subtree (container
// processes whose shim is gone), in every hierarchy, until none is left.
func killCgroup(p string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		dirs, err := cgroupDirs(p)
		if err != nil {
			return err
		}
		left := 0
		for _, d := range dirs {
			// Frozen processes cannot die.
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0o644)
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					left++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still left in cgroup %s", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroup removes cgroup p's subtree, deepest first, in every hierarchy.
func removeCgroup(p string) error {
	dirs, err := cgroupDirs(p)
	if err != nil {
		return err
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		// A cgroup whose last process just died may still be busy for a moment.
		err := Until(context.Background(), 10*time.Second, "rmdir "+d, func() error {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killShims SIGKILLs containerd shims left over from the harness's
// containerds (their command line names its directory).
func killShims(dir string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !bytes.HasPrefix(comm, []byte("containerd-shim")) || !ours(pid, dir) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		p := &Process{h: &Harness{Dir: dir}, Name: "shim", PID: pid}
		if !p.waitGone(10 * time.Second) {
			errs = append(errs, fmt.Errorf("shim %d survived SIGKILL", pid))
		}
	}
	return errors.Join(errs...)
}

// unmountAll unmounts every mount point under the harness directory (the
// kubelet's volumes, the CRI plugin's sandbox /dev/shm, ...), deepest first.
func (h *Harness) unmountAll() error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == h.Dir || strings.HasPrefix(mp, h.Dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			}
		}
	}
	return errors.Join(errs...)
}

// cleanShimSockets removes what containerd 1.6's shims of the harness's
// containerds left in /run/containerd/s (they put their sockets there
// whatever containerd's --state): the sockets their task bundles name.
func cleanShimSockets(dir string) error {
	addrs, _ := filepath.Glob(filepath.Join(dir, "*", "state", "io.containerd.runtime.v2.task", "*", "*", "address"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "*", "state", "io.containerd.runtime.v2.task", "*", "*", "address"))
	for _, f := range append(addrs, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		a := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
		if strings.HasPrefix(a, "/run/containerd/s/") {
			_ = os.Remove(a)
		}
	}
	return nil
}
