package kernel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

func TestParsePSI(t *testing.T) {
	for _, tc := range []struct {
		in         string
		some, full time.Duration
		bad        bool
	}{
		// As Linux 6.1 writes a container's memory.pressure (the VM's).
		{in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"},
		{in: "some avg10=12.50 avg60=3.10 avg300=0.71 total=2345678\nfull avg10=8.01 avg60=1.99 avg300=0.45 total=1500000\n",
			some: 2345678 * time.Microsecond, full: 1500 * time.Millisecond},
		{in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n", bad: true}, // no full line
		{in: "some avg10=0.00 total=x\nfull total=1\n", bad: true},
		{in: "some avg10=0.00\nfull total=1\n", bad: true},
		{in: "some total=99999999999999999999\nfull total=1\n", bad: true},
		{in: "", bad: true},
	} {
		some, full, err := ParsePSI([]byte(tc.in))
		if (err != nil) != tc.bad || some != tc.some || full != tc.full {
			t.Errorf("%q: %v %v %v", tc.in, some, full, err)
		}
	}
}

func TestParseLimitHits(t *testing.T) {
	p, err := ParseLimitEvents([]byte("low 0\nhigh 17\nmax 1204\noom 3\noom_kill 3\noom_group_kill 0\n"))
	if err != nil || p != (store.MemoryPressure{LimitHits: 1204, HasLimitHits: true, HighHits: 17, HasHighHits: true}) {
		t.Errorf("memory.events: %+v %v", p, err)
	}
	if _, err := ParseLimitEvents([]byte("oom 3\noom_kill 3\n")); err == nil {
		t.Error("memory.events without max and high taken")
	}
	if _, err := ParseLimitEvents([]byte("high x\nmax 1\n")); err == nil {
		t.Error("a count that is no number taken")
	}
	if n, err := ParseFailcnt([]byte("42\n")); err != nil || n != 42 {
		t.Errorf("memory.failcnt: %d %v", n, err)
	}
	if _, err := ParseFailcnt([]byte("-1\n")); err == nil {
		t.Error("a negative failcnt taken")
	}
}

func pressureOf(t *testing.T, st *store.Store, key string) store.MemoryPressure {
	t.Helper()
	return container(t, st, key).Pressure
}

func wantPressure(t *testing.T, st *store.Store, key string, ok func(store.MemoryPressure) bool, what string) {
	t.Helper()
	waitFor(t, func() error {
		for _, c := range st.Snapshot().Containers {
			if c.Meta.Key() == key {
				if !ok(c.Pressure) {
					return fmt.Errorf("%s: %+v, want %s", key, c.Pressure, what)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not exported", key)
	})
}

// cgroup v1: memory.failcnt is read when the cgroup is found and at every
// walk, never at a scrape; v1 has no high and no PSI.
func TestLimitHitsV1(t *testing.T) {
	h := newFakeHierarchy(t, false)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	a := "/docker/" + id1
	h.mkdir(a, 0)
	h.write(a+"/memory.failcnt", "12\n")
	runCgroups(t, src)
	key := "docker://" + id1
	wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.HasLimitHits && p.LimitHits == 12 }, "12 limit hits")
	h.write(a+"/memory.failcnt", "30\n")
	h.write(a+"/memory.memsw.failcnt", "10\n") // hits of the memory+swap limit count there alone
	if p := pressureOf(t, st, key); p.LimitHits != 12 {
		t.Fatalf("read without a walk: %+v", p)
	}
	src.cg.scan() // the walk, every 30 s
	wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.LimitHits == 40 }, "40 limit hits, 30 + 10")
	if p := pressureOf(t, st, key); p.HasHighHits || p.HasStall {
		t.Errorf("cgroup v1 has no high and no PSI: %+v", p)
	}
	// A restart: a new cgroup whose failcnt counts from 0.
	remade(t, h, src, a)
	h.write(a+"/memory.failcnt", "3\n")
	src.cg.scan()
	wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.LimitHits == 43 }, "43 limit hits: 40 before the restart and 3 since")
}

// v2Reader runs the cgroup reader on a cgroup v2 hierarchy in which a's
// cgroup, of container key, is still to be made.
func v2Reader(t *testing.T) (h *fakeHierarchy, src *Source, st *store.Store, a, key string) {
	h = newFakeHierarchy(t, true)
	src, st = testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	h.mkdir("/system.slice", 0)
	runCgroups(t, src)
	return h, src, st, "/system.slice/docker-" + id1 + ".scope", "docker://" + id1
}

// cgroup v2: memory.events' max and high are read at each change the kernel
// notifies; memory.pressure at most every pressureEvery, and at once when a
// kill is counted.
func TestPressureV2(t *testing.T) {
	h, src, st, a, key := v2Reader(t)
	psi := func(some, full int) {
		h.write(a+"/memory.pressure", fmt.Sprintf("some avg10=1.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=%d\n", some, full))
	}
	events := func(high, hits, kills int) {
		h.write(a+"/memory.events", fmt.Sprintf("low 0\nhigh %d\nmax %d\noom %d\noom_kill %d\noom_group_kill 0\n", high, hits, kills, kills))
	}
	h.mkdir(a, 0) // read at once, maybe before memory.pressure is written
	psi(1000, 500)
	events(0, 3, 0)
	src.cg.scan() // the walk reads every file
	wantPressure(t, st, key, func(p store.MemoryPressure) bool {
		return p.LimitHits == 3 && p.HasHighHits && p.HasStall && p.Waiting == time.Millisecond && p.Stalled == 500*time.Microsecond
	}, "3 limit hits, 1 ms some, 0.5 ms full")

	psi(9000, 4000)
	events(2, 50, 0) // a change of memory.events: its hits at once, PSI not yet due
	wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.LimitHits == 50 && p.HighHits == 2 }, "50 limit hits, 2 high")
	if p := pressureOf(t, st, key); p.Waiting != time.Millisecond {
		t.Fatalf("memory.pressure read again before it was due: %+v", p)
	}
	events(2, 51, 1) // a kill: every counter read now
	wantPressure(t, st, key, func(p store.MemoryPressure) bool {
		return p.LimitHits == 51 && p.Waiting == 9*time.Millisecond && p.Stalled == 4*time.Millisecond
	}, "the stall read at the kill")
	psi(12000, 4000)
	src.cg.scan() // the walk: due again
	wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.Waiting == 12*time.Millisecond }, "the stall read at the walk")
}

// A kernel without PSI (or with it off for the cgroup) gives no
// memory.pressure: the limit hits are exported, no stall.
func TestPressureV2WithoutPSI(t *testing.T) {
	h, _, st, a, key := v2Reader(t)
	h.mkdir(a, 0)
	wantPressure(t, st, key, func(p store.MemoryPressure) bool {
		return p.HasLimitHits && p.LimitHits == 3 && p.HasHighHits && !p.HasStall
	},
		"memory.events' 3 limit hits and no stall")
}

// A Kubernetes container's pod has a limit of its own, which a pod of one
// container reaches first: the pod's own hits are read beside the
// container's, at the same times, and a restart (a new cgroup in the same
// pod) does not add them up again. A parent that does not name the pod is
// not taken for it.
func TestPodLimitHits(t *testing.T) {
	const uid = "3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60"
	for _, tc := range []struct {
		name     string
		v2       bool
		pod, dir string
		hits     func(h *fakeHierarchy, dir string, n int)
		own      uint64 // the container's own hits, as the fake makes its cgroup
	}{
		{"v1, cgroupfs driver", false, "/kubepods/burstable/pod" + uid, "/kubepods/burstable/pod" + uid + "/" + id1,
			func(h *fakeHierarchy, dir string, n int) { h.write(dir+"/memory.failcnt", fmt.Sprintf("%d\n", n)) }, 0},
		{"v2, systemd driver", true, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id1 + ".scope",
			func(h *fakeHierarchy, dir string, n int) {
				// memory.events adds the hits of its children; .local has the pod's own.
				h.write(dir+"/memory.events", fmt.Sprintf("low 0\nhigh 0\nmax %d\noom 0\noom_kill 0\n", n+1000))
				h.write(dir+"/memory.events.local", fmt.Sprintf("low 0\nhigh 0\nmax %d\noom 0\noom_kill 0\n", n))
			}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHierarchy(t, tc.v2)
			src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
			tc.hits(h, tc.pod, 7)
			h.mkdir(tc.dir, 0)
			runCgroups(t, src)
			key := "containerd://" + id1
			wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.HasPodLimitHits && p.PodLimitHits == 7 }, "the pod's 7 limit hits")
			if p := pressureOf(t, st, key); p.LimitHits != tc.own {
				t.Errorf("the pod's hits counted as the container's: %+v", p)
			}
			tc.hits(h, tc.pod, 20)
			src.cg.scan()
			wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.PodLimitHits == 20 }, "20 pod limit hits, read at the walk")
			h.rmdir(tc.dir) // a restart in place: the same pod, a new cgroup
			h.mkdir(tc.dir, 0)
			tc.hits(h, tc.pod, 23)
			src.cg.scan()
			wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.PodLimitHits == 23 }, "23 pod limit hits, the pod's count, not 20 + 23")
		})
	}
	for _, path := range []string{"/kubepods/burstable/evil/" + id1, "/docker/" + id1} {
		c, parsed := ParseContainerPath(path, nil)
		if _, ok := podDir(c); !parsed || ok {
			t.Errorf("%s: a parent that does not name a pod taken for its cgroup (parsed %v)", path, parsed)
		}
	}
}

// A container's cgroup made while the reader watches is exported at once,
// its own counters from 0 and its pod's limit hits as the pod counts them;
// what its cgroup counts later is read at the next walk (cgroup v1
// notifies no change) or at once (v2).
func TestCgroupMadeWhileWatchedStartsFromZero(t *testing.T) {
	const pod = "/kubepods/burstable/pod3f5c9a1e-8b2d-4c6e-9f0a-1b2c3d4e5f60"
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("cgroup v2 %v", v2), func(t *testing.T) {
			h := newFakeHierarchy(t, v2)
			if v2 {
				h.write(pod+"/memory.events.local", "low 0\nhigh 0\nmax 7\noom 0\noom_kill 0\n")
			} else {
				h.write(pod+"/memory.failcnt", "7\n")
			}
			src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
			runCgroups(t, src)
			dir, key := pod+"/"+id1, "containerd://"+id1
			h.mkdir(dir, 0)
			wantPressure(t, st, key, func(p store.MemoryPressure) bool {
				return p.HasLimitHits && p.HasPodLimitHits && p.PodLimitHits == 7
			}, "its limit hits, and its pod's 7")
			if v2 {
				h.setKills(dir, 2) // memory.events: max 3
			} else {
				h.setKills(dir, 2)
				h.write(dir+"/memory.failcnt", "3\n")
				src.cg.scan()
			}
			wantOOMs(t, st, key, 2)
			wantPressure(t, st, key, func(p store.MemoryPressure) bool { return p.LimitHits == 3 }, "3 limit hits")
		})
	}
}
