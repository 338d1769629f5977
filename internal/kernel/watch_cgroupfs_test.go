package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
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

// watchTest is a reader on this host's real cgroupfs, following cgroups
// made in a parent of the test's own that it trusts as it does Docker's
// --cgroup-parent.
type watchTest struct {
	t      *testing.T
	h      Hierarchy
	parent string // the parent's directory
	src    *Source
	st     *store.Store
	w      *watcher
}

// newWatchTest starts a reader that holds at most maxWatches watches, and
// logs to log (nil: the tests' log).
func newWatchTest(t *testing.T, maxWatches int, log *slog.Logger) *watchTest {
	h, self := realHierarchy(t)
	parentPath := filepath.Join(self, fmt.Sprintf("mcm-watch-test-%d-%d", os.Getpid(), watchTests.Add(1)))
	parent := filepath.Join(h.Root, parentPath)
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(t, parent) })
	if h.V2 {
		// Children of the test's cgroup get the memory controller, so that
		// theirs have memory.events.
		enable(t, filepath.Join(h.Root, self), parent)
	}
	cfg := Config{SysFS: "/sys", ProcFS: "/proc", CgroupParents: []string{parentPath}, MaxWatches: maxWatches}
	src, st := testSource(t, cfg)
	if log != nil {
		src = New(cfg, st, log)
	}
	runCgroups(t, src)
	w := src.cg.watcher()
	if w == nil {
		t.Fatal("the reader watches nothing")
	}
	return &watchTest{t: t, h: h, parent: parent, src: src, st: st, w: w}
}

// mkdir makes a cgroup under the parent; on cgroup v2 its children get the
// memory controller.
func (x *watchTest) mkdir(rel string, parentOfMore bool) string {
	x.t.Helper()
	p := filepath.Join(x.parent, rel)
	if err := os.Mkdir(p, 0o755); err != nil {
		x.t.Fatal(err)
	}
	if x.h.V2 && parentOfMore {
		enable(x.t, p)
	}
	return p
}

// under counts the watches the reader holds below the parent.
func (x *watchTest) under() (paths int) {
	for _, p := range x.w.watched() {
		if strings.HasPrefix(p, x.parent+"/") {
			paths++
		}
	}
	return paths
}

// tracked counts the containers the reader tracks below the parent.
func (x *watchTest) tracked() (n int) {
	for _, t := range x.src.cg.all() {
		if strings.HasPrefix(x.src.cg.abs(t.c.Dir), x.parent+"/") {
			n++
		}
	}
	return n
}

// exported checks that the exported count of watches is the reader's, and
// its limit the one set.
func (x *watchTest) exported(limit int) {
	x.t.Helper()
	waitFor(x.t, func() error {
		for _, s := range x.st.Sources() {
			if s.Name == "cgroup" && (s.Watches != x.w.count() || s.WatchLimit != limit) {
				return fmt.Errorf("exported %d watches of %d, the reader holds %d of %d", s.Watches, s.WatchLimit, x.w.count(), limit)
			}
		}
		return nil
	})
}

// removeTree removes a tree of cgroups, deepest first.
func removeTree(t *testing.T, dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup left behind: %v", err)
		}
	}
}

var watchTests atomic.Int64

// logBuffer is a log's output that a test reads while the reader writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func containerName(i int) string { return fmt.Sprintf("%064x", i) }

// cgroupfs never tells inotify that a removed cgroup's watch is gone
// (IN_IGNORED comes on tmpfs, not there): the reader must let go of the
// watches of every cgroup removed, or a node that churns pods runs out of
// fs.inotify.max_user_watches, which it shares with the kubelet and
// systemd. 1,000 pods' cgroups, each with a container's, made and removed
// on the real cgroupfs leave no kernel watch of theirs (on cgroup v2 also
// none of the containers' memory.events) and no path in the reader's map.
// It runs on this host's cgroup v1, and in the cgroup v2 VM (test/vm,
// TestCgroupV2InVM).
func TestWatchesOfRemovedCgroupsAreFreed(t *testing.T) {
	x := newWatchTest(t, 0, nil)
	const n = 1000
	inos := map[uint64]bool{}
	ino := func(path string) {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		inos[st.Ino] = true
	}
	for i := range n {
		pod := x.mkdir(fmt.Sprintf("pod%d", i), true)
		ctr := x.mkdir(filepath.Join(filepath.Base(pod), containerName(i)), false)
		ino(pod) // a watch of each pod's directory
		if x.h.V2 {
			ino(filepath.Join(ctr, "memory.events")) // and of its container's memory.events
		}
	}
	want := n
	if x.h.V2 {
		want = 2 * n
	}
	ours := func() (held int) {
		for ino := range kernelWatches(t, x.w.fd()) {
			if inos[ino] {
				held++
			}
		}
		return held
	}
	waitWithin(t, 2*time.Minute, func() error {
		if held := ours(); held != want {
			return fmt.Errorf("%d of the %d watches of the %d new pods held", held, want, n)
		}
		if got := x.tracked(); got != n {
			return fmt.Errorf("%d of the %d containers tracked", got, n)
		}
		return nil
	})
	t.Logf("with %d pods made (cgroup v2: %v): %d kernel watches, %d under the test's parent in the reader's map", n, x.h.V2, len(kernelWatches(t, x.w.fd())), x.under())
	for i := range n {
		pod := filepath.Join(x.parent, fmt.Sprintf("pod%d", i))
		for _, d := range []string{filepath.Join(pod, containerName(i)), pod} {
			if err := os.Remove(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitWithin(t, 2*time.Minute, func() error {
		if held, paths := ours(), x.under(); held != 0 || paths != 0 {
			return fmt.Errorf("after removing the %d pods the kernel still holds %d watches of theirs, and the reader %d paths", n, held, paths)
		}
		return nil
	})
	x.exported(0) // what an operator sees
	t.Logf("after removing them: %d kernel watches", len(kernelWatches(t, x.w.fd())))
}

// A tenant can make cgroups in its container's own (Docker in Docker,
// systemd in a container, or on purpose), as many as it likes: the reader
// reads nothing there, and watches none of them, whether they were made
// before it looked or after. The container itself is still counted.
func TestNothingBelowAContainersCgroupIsWatched(t *testing.T) {
	x := newWatchTest(t, 0, nil)
	before := x.mkdir(containerName(1), true)
	nest := func(ctr string, n int) {
		for i := range n {
			x.mkdir(filepath.Join(filepath.Base(ctr), fmt.Sprintf("nested%d", i)), false)
		}
	}
	nest(before, 300)
	x.src.cg.requestRescan() // the reader finds the first by a walk
	after := x.mkdir(containerName(2), true)
	nest(after, 300) // the second by inotify, then its children are made
	want := 0        // on cgroup v1 a container's cgroup needs no watch
	if x.h.V2 {
		want = 2 // its memory.events
	}
	waitWithin(t, time.Minute, func() error {
		if got := x.tracked(); got != 2 {
			return fmt.Errorf("%d of the 2 containers tracked", got)
		}
		if got := x.under(); got != want {
			return fmt.Errorf("%d watches below the parent, want %d", got, want)
		}
		return nil
	})
	// A rescan walks the tree again: nothing more.
	x.src.cg.requestRescan()
	nest(after, 0)
	x.src.cg.scan()
	if got := x.under(); got != want {
		t.Errorf("after a rescan %d watches below the parent, want %d", got, want)
	}
	x.exported(0)
}

// The watches are capped: past --kernel.max-watches the reader watches no
// more, says so once, exports the count against the cap, and still finds
// every container by its rescans.
func TestWatchesAreCapped(t *testing.T) {
	// What a reader holds with no pod: the host's cgroups above its
	// containers', and the parents of the tests.
	base := newWatchTest(t, 0, nil).w.count()
	limit := base + 20
	var logged logBuffer
	x := newWatchTest(t, limit, slog.New(slog.NewTextHandler(&logged, nil)))
	const n = 60
	for i := range n {
		pod := x.mkdir(fmt.Sprintf("pod%d", i), true)
		x.mkdir(filepath.Join(filepath.Base(pod), containerName(i)), false)
	}
	x.src.cg.requestRescan()
	waitWithin(t, time.Minute, func() error {
		if got := x.tracked(); got != n {
			return fmt.Errorf("%d of the %d containers tracked", got, n)
		}
		return nil
	})
	x.src.cg.scan()
	if got := x.w.count(); got != limit {
		t.Errorf("the reader holds %d watches, want the cap, %d", got, limit)
	}
	x.exported(limit)
	if got := strings.Count(logged.String(), "the inotify watch cap is reached"); got != 1 {
		t.Errorf("the cap was logged %d times, want once:\n%s", got, logged.String())
	}
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

// Cgroups where no container's can be (another service's, beside the
// trusted parent) are neither watched nor walked, made before the reader
// started or after, and whatever they are named; nothing in them is tracked.
func TestCgroupsOfNoParentAreNotWatched(t *testing.T) {
	x := newWatchTest(t, 0, nil)
	other := x.parent + "-other" // beside the parent, under the test's own cgroup, which is watched
	mk := func(p string) {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(other)
	t.Cleanup(func() { removeTree(t, other) })
	mk(filepath.Join(other, "service"))
	mk(filepath.Join(other, containerName(1)))
	// One inotify queue: once the reader has the later mkdir in the parent,
	// it has handled those above.
	sub := x.mkdir("sub", true)
	waitWithin(t, time.Minute, func() error {
		for _, p := range x.w.watched() {
			if p == sub {
				return nil
			}
		}
		return fmt.Errorf("%s not watched yet", sub)
	})
	x.src.cg.scan() // and a walk
	for _, p := range x.w.watched() {
		if p == other || strings.HasPrefix(p, other+"/") {
			t.Errorf("%s is watched", p)
		}
	}
	if got := x.tracked(); got != 0 {
		t.Errorf("%d containers tracked, want none", got)
	}
}
