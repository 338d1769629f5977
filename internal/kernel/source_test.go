package kernel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// fakeLog gives records like /dev/kmsg: some already there, then an
// overwrite (EPIPE), bad records, and records that arrive while waiting.
type fakeLog struct {
	items   []fakeRecord
	stopped chan struct{}
	drained chan struct{} // closed when every item was read
	once    sync.Once
	// atEnd, if not nil, is closed when the reader reached the last item
	// and is about to wait (it calls caughtUp then).
	atEnd     chan struct{}
	atEndOnce sync.Once
}

type fakeRecord struct {
	text   string
	waited bool
	err    error
	gate   chan struct{} // if not nil, the record is read once it is closed
	atGate chan struct{} // if not nil, closed when the reader waits at gate
}

func (f *fakeLog) next(buf []byte, caughtUp func(), quiet time.Duration) (int, bool, error) {
	if len(f.items) == 0 || f.items[0].waited {
		if f.atEnd != nil && len(f.items) == 0 {
			f.atEndOnce.Do(func() { close(f.atEnd) })
		}
		caughtUp()
		if quiet > 0 && len(f.items) == 0 {
			// Nothing more comes within the quiet time.
			return 0, false, errQuiet
		}
	}
	if len(f.items) == 0 {
		close(f.drained)
		<-f.stopped
		return 0, false, errStopped
	}
	it := f.items[0]
	f.items = f.items[1:]
	if it.gate != nil {
		if it.atGate != nil {
			close(it.atGate)
		}
		<-it.gate
	}
	if it.err != nil {
		return 0, false, it.err
	}
	return copy(buf, it.text), it.waited, nil
}

func (f *fakeLog) stop()        { f.once.Do(func() { close(f.stopped) }) }
func (f *fakeLog) close() error { return nil }

func testSource(t *testing.T, cfg Config) (*Source, *store.Store) {
	t.Helper()
	st := store.New(time.Minute)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return New(cfg, st, log), st
}

func container(t *testing.T, st *store.Store, key string) store.Container {
	t.Helper()
	for _, c := range st.Snapshot().Containers {
		if c.Meta.Key() == key {
			return c
		}
	}
	t.Fatalf("%s not exported: %+v", key, st.Snapshot().Containers)
	return store.Container{}
}

func oomKill(seq int, cg string, pid int) string {
	return fmt.Sprintf("6,%d,%d,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=x,pid=%d,uid=0\n", seq, seq*1000, cg, cg, pid)
}

func killed(seq, pid int, comm string) string {
	return fmt.Sprintf("3,%d,%d,-;Memory cgroup out of memory: Killed process %d (%s) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0\n", seq, seq*1000, pid, comm)
}

// The log reader survives overwritten records and bad ones, says so, and
// attributes every victim it can: to a container, or to the host.
func TestFollowSurvivesOverwritesAndBadRecords(t *testing.T) {
	src, st := testSource(t, Config{SysFS: t.TempDir(), ProcFS: t.TempDir()})
	docker := "/docker/" + id1
	f := &fakeLog{stopped: make(chan struct{}), drained: make(chan struct{}), items: []fakeRecord{
		{text: oomKill(1, docker, 10)},
		{text: killed(2, 10, "worker")}, // history: no cgroup to confirm it, not counted
		{err: fmt.Errorf("read kernel log: %w", unix.EPIPE)},
		{text: "garbage\n"},
		{text: oomKill(9, docker, 11), waited: true},
		{text: killed(10, 11, "worker")},
		{text: oomKill(11, "/system.slice/cron.service", 12)},
		{text: killed(12, 12, "cron")},
		{text: killed(13, 13, "nobody-knows")}, // a rate-limited report: no cgroup
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	up := make(chan struct{})
	src.walkDone() // no cgroup walk here: the buffer's victims go on at once
	go func() { done <- src.follow(ctx, f, func() { close(up) }) }()
	<-up
	select {
	case <-f.drained:
	case <-time.After(10 * time.Second):
		t.Fatal("records not read within 10s")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("follow ended with %v", err)
	}
	c := container(t, st, "docker://"+id1)
	if c.OOMs != 1 || c.ProcessKills["worker"] != 1 || !c.KernelOnly {
		t.Errorf("container: %+v", c)
	}
	snap := st.Snapshot()
	// cron's service hit its own limit: a kill in a cgroup of no
	// container, not one of the node running out of memory.
	if len(snap.HostKills) != 0 || snap.CgroupKills["/system.slice/cron.service"] != 1 || len(snap.CgroupKills) != 1 {
		t.Errorf("host kills %v, cgroup kills %v", snap.HostKills, snap.CgroupKills)
	}
	var kmsg store.SourceStatus
	for _, s := range st.Sources() {
		if s.Name == store.KmsgSource {
			kmsg = s
		}
	}
	if kmsg.Malformed != 2 || kmsg.Events < 8 {
		t.Errorf("kmsg status %+v: want the overwrite and the garbage as malformed", kmsg)
	}
}

// The real device: the reader opens /dev/kmsg, reads what is there, and
// stops when asked, also while it waits for a new record.
func TestKmsgDevice(t *testing.T) {
	f, err := openKmsg("/dev/kmsg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("/dev/kmsg is needed under CI: %v", err)
		}
		t.Skipf("cannot open /dev/kmsg (root is needed): %v", err)
	}
	defer f.close()
	buf := make([]byte, 16<<10)
	caughtUp := false
	onCaughtUp := func() { caughtUp = true }
	n, _, err := f.next(buf, onCaughtUp, 0)
	if err != nil && !strings.Contains(err.Error(), "broken pipe") {
		t.Fatal(err)
	}
	if n > 0 {
		if _, err := ParseRecord(buf[:n]); err != nil {
			t.Fatalf("a real record does not parse: %v", err)
		}
	}
	time.AfterFunc(200*time.Millisecond, f.stop)
	for {
		if _, _, err := f.next(buf, onCaughtUp, 0); err == errStopped {
			break
		}
	}
	if !caughtUp {
		t.Error("the whole kernel log was read, and the reader never said it had caught up")
	}
}

// fakeHierarchy is a directory tree shaped like a cgroup v1 memory
// hierarchy (or v2 with memory.events): inotify and inodes behave as on
// cgroupfs for what the reader uses.
type fakeHierarchy struct {
	t    *testing.T
	sys  string
	root string
	v2   bool
}

func newFakeHierarchy(t *testing.T, v2 bool) *fakeHierarchy {
	sys := t.TempDir()
	h := &fakeHierarchy{t: t, sys: sys, v2: v2}
	if v2 {
		h.root = filepath.Join(sys, "fs", "cgroup")
		h.write("/cgroup.controllers", "cpu memory pids\n")
	} else {
		h.root = filepath.Join(sys, "fs", "cgroup", "memory")
		h.write("/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	}
	return h
}

func (h *fakeHierarchy) write(rel, s string) {
	h.t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// mkdir makes a cgroup with the counter file the kernel would put in it,
// at once as the kernel does: made aside, then renamed into place.
func (h *fakeHierarchy) mkdir(rel string, kills int) {
	h.t.Helper()
	final := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		h.t.Fatal(err)
	}
	aside := filepath.Join(h.sys, "aside")
	if err := os.MkdirAll(aside, 0o755); err != nil {
		h.t.Fatal(err)
	}
	old := h.root
	h.root = aside
	h.setKills("", kills)
	if !h.v2 {
		h.write("/memory.failcnt", "0\n")
	}
	h.root = old
	if err := os.Rename(aside, final); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHierarchy) setKills(rel string, kills int) {
	h.t.Helper()
	if h.v2 {
		h.write(rel+"/memory.events", fmt.Sprintf("low 0\nhigh 0\nmax 3\noom 3\noom_kill %d\noom_group_kill 1\n", kills))
	} else {
		h.write(rel+"/memory.oom_control", fmt.Sprintf("oom_kill_disable 0\nunder_oom 0\noom_kill %d\n", kills))
	}
}

func (h *fakeHierarchy) rmdir(rel string) {
	h.t.Helper()
	if err := os.RemoveAll(filepath.Join(h.root, rel)); err != nil {
		h.t.Fatal(err)
	}
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t *testing.T, f func() error) {
	t.Helper()
	waitWithin(t, 10*time.Second, f)
}

// waitWithin is waitFor with a deadline of its own, for work that takes
// long where the machine is slow (the cgroup v2 VM is software-emulated).
func waitWithin(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ooms(st *store.Store, key string) (uint64, bool) {
	for _, c := range st.Snapshot().Containers {
		if c.Meta.Key() == key {
			return c.OOMs, true
		}
	}
	return 0, false
}

func wantOOMs(t *testing.T, st *store.Store, key string, want uint64) {
	t.Helper()
	waitFor(t, func() error {
		n, ok := ooms(st, key)
		if !ok || n != want {
			return fmt.Errorf("%s: ooms %d (exported %v), want %d", key, n, ok, want)
		}
		return nil
	})
}

func runCgroups(t *testing.T, src *Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	up := make(chan struct{})
	go func() {
		defer close(done)
		if err := src.cg.session(ctx, func() { close(up) }); err != context.Canceled {
			t.Errorf("cgroup session ended with %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-up:
	case <-done:
		t.Fatal("cgroup session ended before it was up")
	}
}

// The cgroup reader finds containers that were there before it started,
// sees new ones made and removed, takes a cgroup made again as a new
// instance, and reads the counters at every refresh (cgroup v1).
func TestCgroupsV1(t *testing.T) {
	h := newFakeHierarchy(t, false)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir(), CgroupParents: []string{"/parent"}})
	a, b := "/docker/"+id1, "/parent/"+id2
	h.mkdir(a, 2)
	h.mkdir("/system.slice/cron.service", 9)
	runCgroups(t, src)
	wantOOMs(t, st, "docker://"+id1, 2)

	h.mkdir(b, 0) // a new container, seen by inotify
	waitFor(t, func() error {
		if _, ok := ooms(st, "docker://"+id2); !ok {
			return fmt.Errorf("new container not seen")
		}
		return nil
	})
	h.setKills(b, 3)
	src.cg.readAll(time.Second) // v1 notifies no kill: read at the next walk, kill record or report
	wantOOMs(t, st, "docker://"+id2, 3)

	remade(t, h, src, a) // the container stops: its cgroup goes, and is made again
	h.setKills(a, 1)
	src.cg.readAll(time.Second)
	wantOOMs(t, st, "docker://"+id1, 3) // 2 of the old instance + 1 of the new

	// Named like a container, but where no runtime makes containers.
	h.mkdir("/user.slice/u/docker/"+strings.Repeat("d", 64), 7)
	h.mkdir("/elsewhere/"+strings.Repeat("e", 64), 7)
	src.cg.readAll(time.Second)
	if n := len(st.Snapshot().Containers); n != 2 {
		t.Errorf("%d containers exported, want 2 (cron.service and the cgroups out of place are none)", n)
	}

	// The kernel log may report a kill in a new cgroup before inotify: the
	// victim and the counter are one kill, in one instance.
	c := "/docker/" + strings.Repeat("c", 64)
	h.mkdir(c, 1)
	src.victim(Victim{Seq: 1, PID: 9, Process: "early", CgroupPath: c}, time.Now(), true, true)
	src.cg.readAll(time.Second)
	wantOOMs(t, st, "docker://"+strings.Repeat("c", 64), 1)
}

// On cgroup v2 a change of memory.events is read at once.
func TestCgroupsV2NotifiesChanges(t *testing.T) {
	h := newFakeHierarchy(t, true)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	a := "/system.slice/docker-" + id1 + ".scope"
	h.mkdir("/system.slice", 0)
	runCgroups(t, src)
	h.mkdir(a, 0)
	wantOOMs(t, st, "docker://"+id1, 0)
	h.setKills(a, 4) // no read asked for: the write notifies
	wantOOMs(t, st, "docker://"+id1, 4)
	c := container(t, st, "docker://"+id1)
	if !c.HasGroupKills || c.GroupKills != 1 {
		t.Errorf("group kills: %+v", c)
	}
}

// A container whose cgroup path names no container is found through the
// pid of its main process that the runtime gave.
func TestCgroupFoundByPid(t *testing.T) {
	h := newFakeHierarchy(t, false)
	proc := t.TempDir()
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: proc})
	h.mkdir("/default/web", 5)
	if err := os.MkdirAll(filepath.Join(proc, "4242"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte("4:memory:/default/web\n0::/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st.AddSource("containerd")
	st.SetUp("containerd", true, nil)
	st.Apply(store.Observed{Meta: store.Meta{Runtime: "containerd", ID: "web", Name: "web"}, State: store.State{Running: true, StartedAt: time.Now(), Pid: 4242}})
	// A stale pid of another container: not taken.
	st.Apply(store.Observed{Meta: store.Meta{Runtime: "containerd", ID: "db"}, State: store.State{Running: true, StartedAt: time.Now(), Pid: 4242}})
	runCgroups(t, src)
	wantOOMs(t, st, "containerd://web", 5)
	if n, _ := ooms(st, "containerd://db"); n != 0 {
		t.Errorf("a stale pid gave db %d kills", n)
	}
	// The kernel log's victims in it are its own.
	src.victim(Victim{Seq: 1, PID: 7, Process: "nginx", CgroupPath: "/default/web"}, time.Now(), true, true)
	if c := container(t, st, "containerd://web"); c.ProcessKills["nginx"] != 1 {
		t.Errorf("victim: %+v", c)
	}
}

// The event loop, the kernel log reader and scrapes may all find a new
// cgroup at once: it is one instance, its kills count once.
func TestConcurrentDiscoveryCountsOnce(t *testing.T) {
	h := newFakeHierarchy(t, false)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	runCgroups(t, src)
	for i := range 20 {
		id := fmt.Sprintf("%064x", i+1)
		h.mkdir("/docker/"+id, 2)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if src.cg.ensure(ContainerCgroup{Runtime: store.RuntimeDocker, ID: id, Dir: "/docker/" + id}) != 0 {
					src.cg.read("/docker/" + id)
				}
				src.cg.readAll(time.Second)
			}()
		}
		wg.Wait()
		wantOOMs(t, st, "docker://"+id, 2)
	}
	waitFor(t, func() error { // and the inotify events that follow change nothing
		for _, c := range st.Snapshot().Containers {
			if c.OOMs != 2 {
				return fmt.Errorf("%s: %d", c.Meta.Key(), c.OOMs)
			}
		}
		return nil
	})
}

// With --path.kmsg empty the kernel log is not read and not reported as a
// source; the cgroups are.
func TestWithoutKernelLog(t *testing.T) {
	h := newFakeHierarchy(t, false)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx); close(done) }()
	waitFor(t, func() error {
		for _, s := range st.Sources() {
			if s.Name == store.CgroupSource && s.Up {
				return nil
			}
		}
		return fmt.Errorf("cgroup source not up: %+v", st.Sources())
	})
	cancel()
	<-done
	for _, s := range st.Sources() {
		if s.Name == store.KmsgSource {
			t.Errorf("the kernel log is a source: %+v", s)
		}
	}
}

// The victims in the kernel log's buffer from before the exporter started
// count only in a cgroup the reader knows: they wait for its first walk
// (a restarted exporter read them first under load and lost their names),
// and the log is up only once they are applied.
func TestBufferedVictimsWaitForTheCgroupWalk(t *testing.T) {
	src, st := testSource(t, Config{SysFS: t.TempDir(), ProcFS: t.TempDir()})
	docker := "/docker/" + id1
	f := &fakeLog{stopped: make(chan struct{}), drained: make(chan struct{}), atEnd: make(chan struct{}), items: []fakeRecord{
		{text: oomKill(1, docker, 10)},
		{text: killed(2, 10, "worker")}, // history
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	up := make(chan struct{})
	go func() { done <- src.follow(ctx, f, func() { close(up) }) }()
	select {
	case <-f.atEnd:
	case <-time.After(10 * time.Second):
		t.Fatal("the records not read within 10s")
	}
	select {
	case <-up:
		t.Fatal("the kernel log is up before its buffer's victims were applied")
	default:
	}
	// The walk finds the container's cgroup, whose counter holds the kill.
	st.Apply(store.KernelOOMCount{Cgroup: store.Cgroup{Meta: store.Meta{Runtime: "docker", ID: id1}, Path: docker},
		Instance: 1, Kills: 1, At: time.Now()})
	src.walkDone()
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("the kernel log not up within 10s of the walk")
	}
	if c := container(t, st, "docker://"+id1); c.OOMs != 1 || c.ProcessKills["worker"] != 1 {
		t.Fatalf("got %d OOMs, by process %v; want the buffered victim named", c.OOMs, c.ProcessKills)
	}
	cancel()
	f.stop()
	<-done
}

// The cgroup walk can end while the buffer is still being read: the
// victims queued before it and those read after it go to the store in the
// log's order (the store takes a record only if it is newer than the last),
// so none is lost. A restarted exporter in the VM named 1 of 3 kills.
func TestBufferedVictimsKeepTheirOrderWhenTheWalkEndsBetween(t *testing.T) {
	src, st := testSource(t, Config{SysFS: t.TempDir(), ProcFS: t.TempDir()})
	docker := "/docker/" + id1
	gate, atGate := make(chan struct{}), make(chan struct{})
	f := &fakeLog{stopped: make(chan struct{}), drained: make(chan struct{}), items: []fakeRecord{
		{text: oomKill(1, docker, 10)},
		{text: killed(2, 10, "worker")},
		{text: oomKill(3, docker, 11), gate: gate, atGate: atGate},
		{text: killed(4, 11, "worker")},
	}}
	st.Apply(store.KernelOOMCount{Cgroup: store.Cgroup{Meta: store.Meta{Runtime: "docker", ID: id1}, Path: docker},
		Instance: 1, Kills: 2, At: time.Now()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	up := make(chan struct{})
	go func() { done <- src.follow(ctx, f, func() { close(up) }) }()
	<-atGate // the first victim is queued: the walk is not done
	src.walkDone()
	close(gate)
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		t.Fatal("the kernel log not up within 10s")
	}
	if c := container(t, st, "docker://"+id1); c.ProcessKills["worker"] != 2 {
		t.Fatalf("by process %v, want both buffered victims named", c.ProcessKills)
	}
	cancel()
	f.stop()
	<-done
}

// A kill storm past the kernel's rate limit: after ten reports in five
// seconds it prints only "Killed process" lines. Container B's victim then
// follows container A's group kill within its window, where it reads like
// one of A's members. Only the kernel's word places it: /proc, or a counter
// that counts a kill no victim explains. Never in A, never with A's report.
func TestStormVictimIsNeverAnotherContainersMember(t *testing.T) {
	a, b := "/system.slice/docker-"+id1+".scope", "/system.slice/docker-"+id2+".scope"
	for _, tc := range []struct {
		name       string
		procOfB    string // B's victim's /proc/PID/cgroup; "" if it is gone
		memberGone bool   // A's member 12 was gone before /proc was read
		bKills     int
		wantB      uint64
		unplaced   bool
	}{
		{"/proc tells", b, false, 1, 1, false},
		{"gone, no counter has room", "", false, 1, 1, true},
		{"a member gone: A's counter has room for it, not for B's", "", true, 1, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHierarchy(t, true)
			proc := t.TempDir()
			src, st := testSource(t, Config{SysFS: h.sys, ProcFS: proc})
			h.mkdir(a, 0)
			h.mkdir(b, 0)
			runCgroups(t, src)
			src.walkDone()
			// A: the chosen victim 10 (its report names it), killed again as a
			// member, and its members 11 and 12 (whose /proc says A); B: 20.
			h.setKills(a, 4)
			h.setKills(b, tc.bKills)
			for _, p := range []struct {
				pid int
				cg  string
			}{{11, a}, {12, a}, {20, tc.procOfB}} {
				if p.cg != "" && !(p.pid == 12 && tc.memberGone) {
					writeProc(t, proc, p.pid, p.cg)
				}
			}
			group := fmt.Sprintf("6,%d,%d,-;Tasks in %s are going to be killed due to memory.oom.group set\n", 3, 3000, a)
			f := &fakeLog{stopped: make(chan struct{}), drained: make(chan struct{}), items: []fakeRecord{
				{text: oomKill(1, a, 10), waited: true},
				{text: killed(2, 10, "ruby")},
				{text: group},
				{text: killed(4, 10, "ruby")},
				{text: killed(5, 11, "sleep")},
				{text: killed(6, 12, "sleep")},
				{text: killed(7, 20, "java")}, // B's, printed alone
			}}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.follow(ctx, f, func() {}) }()
			<-f.drained
			waitFor(t, func() error {
				if c := container(t, st, "docker://"+id2); c.OOMs != tc.wantB {
					return fmt.Errorf("B: %d OOMs, want %d", c.OOMs, tc.wantB)
				}
				return nil
			})
			ca, cb := container(t, st, "docker://"+id1), container(t, st, "docker://"+id2)
			if ca.OOMs != 4 || ca.ProcessKills["java"] != 0 || ca.ProcessKills["ruby"] != 2 || ca.ProcessKills["sleep"] != 2 {
				t.Errorf("A: %d OOMs, by process %v; want its own 4", ca.OOMs, ca.ProcessKills)
			}
			if named := cb.ProcessKills["java"]; (named == 1) == tc.unplaced {
				t.Errorf("B: by process %v", cb.ProcessKills)
			}
			var stray *store.Kill
			for _, k := range st.Kills(0, nil) {
				if k.Process == "java" {
					stray = &k
				}
				if k.Container.ID == id1 && len(k.Members) != 3 {
					t.Errorf("A's group kill: members %+v, want ruby, sleep, sleep", k.Members)
				}
			}
			switch {
			case stray == nil:
				t.Error("no record of B's kill")
			case stray.Details.Group != "" || stray.Details.LimitCgroup != "" || stray.Container.ID == id1:
				t.Errorf("B's kill took A's report: %+v", *stray)
			case stray.Unplaced != tc.unplaced:
				t.Errorf("B's kill unplaced %v, want %v: %+v", stray.Unplaced, tc.unplaced, *stray)
			}
			cancel()
			f.stop()
			<-done
		})
	}
}

// writeProc makes /proc/PID of a live process in the cgroup cg (v2).
func writeProc(t *testing.T, proc string, pid int, cg string) {
	t.Helper()
	dir := filepath.Join(proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"cgroup": "0::" + cg + "\n", "status": fmt.Sprintf("Name:\tp\nNSpid:\t%d\t5\n", pid)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// With the systemd driver the kill empties the container's scope, which
// systemd removes at once: the members' /proc and the scope's counter are
// gone before the reader looks. The report's task dump lists the group's
// tasks (its limit is the group's own cgroup): the members are placed by
// it, and a storm's victim it does not list is not.
func TestGroupMembersPlacedByTheReportsTaskDump(t *testing.T) {
	a := "/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + id1 + ".scope"
	h := newFakeHierarchy(t, true)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	h.mkdir(a, 0)
	runCgroups(t, src)
	src.walkDone()
	h.rmdir(a)
	rec := func(seq int, text string) fakeRecord {
		return fakeRecord{text: fmt.Sprintf("6,%d,%d,-;%s\n", seq, seq*1000, text)}
	}
	first := rec(1, "sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
	first.waited = true
	f := &fakeLog{stopped: make(chan struct{}), drained: make(chan struct{}), items: []fakeRecord{
		first,
		rec(2, dumpStart),
		rec(3, "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"),
		rec(4, "[     10]     0    10    16949     8491     8096        0       395   102400        0             0 ruby"),
		rec(5, "[     11]     0    11      565      331        0        0       331    40960        0             0 sh"),
		rec(6, "[     12]     0    12      565      331        0        0       331    36864        0             0 sleep"),
		{text: oomKill(7, a, 10)},
		{text: killed(8, 10, "ruby")},
		rec(9, "Tasks in "+a+" are going to be killed due to memory.oom.group set"),
		{text: killed(10, 10, "ruby")},
		{text: killed(11, 11, "sh")},
		{text: killed(12, 12, "sleep")},
		{text: killed(13, 20, "java")}, // another container's, its report rate-limited
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.follow(ctx, f, func() {}) }()
	<-f.drained
	waitFor(t, func() error {
		if c := container(t, st, "containerd://"+id1); c.OOMs != 4 {
			return fmt.Errorf("A: %d OOMs, by process %v; want 4", c.OOMs, c.ProcessKills)
		}
		return nil
	})
	if c := container(t, st, "containerd://"+id1); c.ProcessKills["java"] != 0 || c.ProcessKills["sh"] != 1 {
		t.Errorf("A: by process %v", c.ProcessKills)
	}
	for _, k := range st.Kills(0, nil) {
		if k.Process == "java" && !k.Unplaced {
			t.Errorf("the storm's victim placed: %+v", k)
		}
		if k.Process == "ruby" && (len(k.Members) != 3 || k.Outcome != store.OutcomeEnded) {
			t.Errorf("the group kill's record: %+v", k)
		}
	}
	cancel()
	f.stop()
	<-done
}

// A removed directory lets go of every container's cgroup below it, also
// when its containers' own removals were not seen (an inotify queue that
// overflowed), and a container's own removal of that one alone; nothing is
// left counted below a directory once its cgroups are gone.
func TestRemovalLetsGoOfWhatIsBelow(t *testing.T) {
	h := newFakeHierarchy(t, false)
	podA, podB := "/kubepods/burstable/podaaaa", "/kubepods/burstable/podbbbb"
	a1, a2, b1 := podA+"/"+id1, podA+"/"+id2, podB+"/"+strings.Repeat("b", 64)
	for _, dir := range []string{a1, a2, b1} {
		h.mkdir(dir, 0)
	}
	c := newCgroups(Config{SysFS: h.sys, ProcFS: t.TempDir()}, store.New(time.Minute), nil, slog.New(slog.DiscardHandler))
	c.h, c.found = Hierarchy{Root: h.root}, true
	c.scan()
	if n := c.count(); n != 3 {
		t.Fatalf("%d cgroups tracked, want 3", n)
	}
	h.rmdir(podA)
	c.removedUnder(podA, time.Now())
	if got := c.lookupDir(b1); got == nil || c.count() != 1 {
		t.Fatalf("after %s was removed: %d tracked (%s tracked: %v), want %s alone", podA, c.count(), b1, got != nil, b1)
	}
	h.rmdir(b1)
	c.removedUnder(b1, time.Now())
	if n := c.count(); n != 0 {
		t.Fatalf("%d cgroups tracked after every one was removed", n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.below) != 0 {
		t.Errorf("tracked cgroups still counted below %v", c.below)
	}
}

// A cgroup whose name leaves its runtime a guess (a bare id under a
// --cgroup-parent) counts for the container a runtime reports with that id,
// whatever its shim suggests; for one no runtime reports, the shim tells
// the runtime.
func TestShimTellsTheRuntimeOfUnreportedContainersOnly(t *testing.T) {
	h := newFakeHierarchy(t, false)
	procfs := t.TempDir()
	for name, content := range map[string]string{
		"42/stat":    "42 (sleep) S 41 42 42 0 -1 4194560",
		"41/cmdline": "conmon\x00--cid\x00x\x00", // CRI-O's shim
	} {
		p := filepath.Join(procfs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reported, unreported := "/parent/"+id1, "/parent/"+id2
	h.mkdir(reported, 2)
	h.mkdir(unreported, 3)
	h.write(reported+"/cgroup.procs", "42\n")
	h.write(unreported+"/cgroup.procs", "42\n")
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: procfs, CgroupParents: []string{"/parent"}})
	st.AddSource("docker")
	st.SetUp("docker", true, nil)
	st.Apply(store.Observed{Meta: store.Meta{Runtime: "docker", ID: id1, Name: "web"}, State: store.State{Running: true, StartedAt: time.Now()}})
	runCgroups(t, src)
	wantOOMs(t, st, "docker://"+id1, 2)
	waitFor(t, func() error {
		for _, c := range st.Snapshot().Containers {
			if c.Meta.ID == id2 {
				if c.Meta.Runtime != store.RuntimeCRIO || c.OOMs != 3 {
					return fmt.Errorf("the unreported container: runtime %q, %d kills; want %q (its shim's), 3", c.Meta.Runtime, c.OOMs, store.RuntimeCRIO)
				}
				return nil
			}
		}
		return fmt.Errorf("the unreported container is not exported")
	})
}

// remade removes the cgroup rel and makes it again, as a restart does, and
// waits until the reader has taken in the new instance, made with its
// counters at 0 (a walk that comes first finds it made at an unknown time,
// and takes what it counts then as counted before the reader looked; one at
// the same time as the reader takes it in may leave its limit hits to the
// next). The fake's file system may give the new directory the old one's
// inode number, which cgroupfs does not: the reader's instance id tells.
func remade(t *testing.T, h *fakeHierarchy, src *Source, rel string) {
	t.Helper()
	old := src.cg.lookupDir(rel)
	if old == nil {
		t.Fatalf("%s is not tracked", rel)
	}
	h.rmdir(rel)
	h.mkdir(rel, 0)
	waitFor(t, func() error {
		tr := src.cg.lookupDir(rel)
		src.cg.mu.Lock()
		defer src.cg.mu.Unlock()
		if tr == nil || tr.id == old.id || !tr.read || tr.pressureAt.IsZero() {
			return fmt.Errorf("%s made again: not taken in", rel)
		}
		return nil
	})
}

// A restarted exporter reads each container's counter at its walk, and
// then the kernel log's buffer. A kill between the two is in the buffer, but
// its victim alone cannot raise the count (the counter counts the earlier
// kills too, which the buffer may not hold), and cgroup v1 notifies no kill:
// the counters are read again once the buffer's victims are placed, before a
// runtime removes the cgroup of a container stopped a second later.
func TestKillBetweenTheWalkAndTheBufferIsCounted(t *testing.T) {
	h := newFakeHierarchy(t, false)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	docker, key := "/docker/"+id1, "docker://"+id1
	h.mkdir(docker, 5) // five kills before the exporter started
	runCgroups(t, src)
	wantOOMs(t, st, key, 5)
	src.walkDone()
	h.setKills(docker, 6) // the sixth, after the walk read the counter
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.serveReadAll(ctx) // as Run does
	f := &fakeLog{stopped: make(chan struct{}), drained: make(chan struct{}), items: []fakeRecord{
		{text: oomKill(1, docker, 10)},
		{text: killed(2, 10, "worker")}, // the buffer holds the sixth only
	}}
	done := make(chan error, 1)
	go func() { done <- src.follow(ctx, f, func() {}) }()
	wantOOMs(t, st, key, 6)
	cancel()
	f.stop()
	<-done
}
