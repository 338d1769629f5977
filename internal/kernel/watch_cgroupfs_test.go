package kernel

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// realHierarchy returns this host's memory cgroup hierarchy and the test
// process's own memory cgroup in it, where the test makes its cgroups. It
// fails under CI, and skips elsewhere, without root or cgroupfs.
func realHierarchy(t *testing.T) (Hierarchy, string) {
	t.Helper()
	h, err := FindHierarchy("/sys")
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("root is needed to make cgroups")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("this test needs the real cgroupfs: %v (a missing prerequisite is a failure under CI)", err)
		}
		t.Skipf("no real cgroupfs to test on: %v", err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	self, err := ParseProcCgroup(b)
	if err != nil {
		t.Fatal(err)
	}
	return h, self
}

// kernelWatches returns the inodes of the watches the kernel holds for an
// inotify descriptor of this process, from /proc/self/fdinfo.
func kernelWatches(t *testing.T, fd uintptr) map[uint64]bool {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inos := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "inotify wd:") {
			continue
		}
		for _, field := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(field, "ino:"); ok {
				n, err := strconv.ParseUint(v, 16, 64)
				if err != nil {
					t.Fatalf("fdinfo: %q: %v", line, err)
				}
				inos[n] = true
			}
		}
	}
	return inos
}

// cgroupfs never tells inotify that a removed cgroup's watch is gone
// (IN_IGNORED comes on tmpfs, not there): the reader must let go of the
// watches of every cgroup removed, or a node that churns containers runs
// out of fs.inotify.max_user_watches, which it shares with the kubelet and
// systemd. 1,000 containers' cgroups made and removed on the real cgroupfs
// leave no kernel watch of theirs (on cgroup v2 also those of their
// memory.events) and no path in the reader's map. It runs on this host's
// cgroup v1, and in the cgroup v2 VM (test/vm, TestCgroupV2InVM).
func TestWatchesOfRemovedCgroupsAreFreed(t *testing.T) {
	h, self := realHierarchy(t)
	parentPath := filepath.Join(self, fmt.Sprintf("mcm-watch-test-%d", os.Getpid()))
	parent := filepath.Join(h.Root, parentPath)
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(parent) })
	if h.V2 {
		// Children of the test's cgroup get the memory controller, so that
		// theirs have memory.events.
		enable(t, filepath.Join(h.Root, self), parent)
	}
	// The cgroups are named as containers are, in a parent the reader
	// trusts as it does Docker's --cgroup-parent.
	src, st := testSource(t, Config{SysFS: "/sys", ProcFS: "/proc", CgroupParents: []string{parentPath}})
	runCgroups(t, src)
	w := src.cg.watcher()
	if w == nil {
		t.Fatal("the reader watches nothing")
	}
	under := func() (paths int) {
		for _, p := range w.watched() {
			if strings.HasPrefix(p, parent+"/") {
				paths++
			}
		}
		return paths
	}

	const n = 1000
	name := func(i int) string { return filepath.Join(parent, fmt.Sprintf("%064x", i)) }
	inos := map[uint64]bool{}
	ino := func(path string) {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		inos[st.Ino] = true
	}
	for i := range n {
		if err := os.Mkdir(name(i), 0o755); err != nil {
			t.Fatal(err)
		}
		ino(name(i))
		if h.V2 {
			ino(filepath.Join(name(i), "memory.events"))
		}
	}
	want := n // a watch of each cgroup's directory
	if h.V2 {
		want = 2 * n // and one of its memory.events
	}
	ours := func() (held int) {
		for ino := range kernelWatches(t, w.fd()) {
			if inos[ino] {
				held++
			}
		}
		return held
	}
	waitWithin(t, 2*time.Minute, func() error {
		if held := ours(); held != want {
			return fmt.Errorf("%d of the %d watches of the %d new cgroups held", held, want, n)
		}
		return nil
	})
	t.Logf("with %d cgroups made (cgroup v2: %v): %d kernel watches, %d under the test's parent in the reader's map", n, h.V2, len(kernelWatches(t, w.fd())), under())
	for i := range n {
		if err := os.Remove(name(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitWithin(t, 2*time.Minute, func() error {
		if held, paths := ours(), under(); held != 0 || paths != 0 {
			return fmt.Errorf("after removing the %d cgroups the kernel still holds %d watches of theirs, and the reader %d paths", n, held, paths)
		}
		return nil
	})
	// What an operator sees: the count the exporter exports.
	waitFor(t, func() error {
		for _, s := range st.Sources() {
			if s.Name == "cgroup" && s.Watches != w.count() {
				return fmt.Errorf("exported %d watches, the reader holds %d", s.Watches, w.count())
			}
		}
		return nil
	})
	t.Logf("after removing them: %d kernel watches", len(kernelWatches(t, w.fd())))
}

// enable turns the memory controller on for the children of each cgroup
// v2 directory given, outermost first.
func enable(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
			t.Fatalf("memory controller for the children of %s: %v", d, err)
		}
	}
}
