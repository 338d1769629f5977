package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// With the systemd driver on cgroup v2, systemd removes a container's scope
// as soon as a kill has emptied it, before the reader read its counter, and
// no kernel log tells of the kill. The pod's cgroup outlives it and counts
// its kills too: the one container gone since the last look gets them.
// Where two went at once, neither does, and the kills count as not
// attributed: never twice, never to the wrong one.
func TestPodCountsTheKillsOfAContainerGoneUnread(t *testing.T) {
	const uid = "0a1b2c3d_4e5f_6789_abcd_ef0123456789"
	id3 := "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid + ".slice"
	a, b, c := pod+"/cri-containerd-"+id1+".scope", pod+"/cri-containerd-"+id2+".scope", pod+"/cri-containerd-"+id3+".scope"
	h := newFakeHierarchy(t, true)
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	h.mkdir(pod, 0)
	h.mkdir(a, 0)
	h.mkdir(b, 0)
	runCgroups(t, src)
	wantOOMs(t, st, "containerd://"+id1, 0)
	wantOOMs(t, st, "containerd://"+id2, 0)

	// A group kill of A's 3 processes: A's counter and the pod's count
	// them, and A's scope goes before its counter is read (the reader is
	// held while it happens).
	src.cg.mu.Lock()
	h.setKills(a, 3)
	h.setKills(pod, 3)
	h.rmdir(a)
	src.cg.mu.Unlock()
	wantOOMs(t, st, "containerd://"+id1, 3)
	wantOOMs(t, st, "containerd://"+id2, 0)

	// A kill B's counter counts: the pod's too, nothing more to give.
	h.setKills(b, 1)
	h.setKills(pod, 4)
	wantOOMs(t, st, "containerd://"+id2, 1)

	// B and C go at once, 2 kills of theirs unread: whose is not known.
	h.mkdir(c, 0)
	wantOOMs(t, st, "containerd://"+id3, 0)
	src.cg.mu.Lock()
	h.setKills(b, 2)
	h.setKills(c, 1)
	h.setKills(pod, 6)
	h.rmdir(b)
	h.rmdir(c)
	src.cg.mu.Unlock()
	waitFor(t, func() error {
		if n := st.Unattributed(); n != 2 {
			return fmt.Errorf("unattributed %d, want 2", n)
		}
		return nil
	})
	for id, want := range map[string]uint64{id1: 3, id2: 1, id3: 0} {
		if n, _ := ooms(st, "containerd://"+id); n != want {
			t.Errorf("%.12s: %d OOMs, want %d", id, n, want)
		}
	}
}

// With the systemd driver, Docker's containers are scopes in system.slice
// beside the node's services, and system.slice counts the kills of both.
// A container whose scope goes before its counter is read gets its kills
// from system.slice's; a service's kills, also those of a transient
// service made, killed and removed between two looks, are never taken for
// a container's.
func TestSystemSliceCountsTheKillsOfADockerContainerGoneUnread(t *testing.T) {
	slice := "/system.slice"
	a, b := slice+"/docker-"+id1+".scope", slice+"/docker-"+id2+".scope"
	cron, job := slice+"/cron.service", slice+"/run-job.service"
	h := newFakeHierarchy(t, true)
	events := func(rel string, kills int) {
		text := fmt.Sprintf("low 0\nhigh 0\nmax 1\noom 1\noom_kill %d\noom_group_kill 0\n", kills)
		if strings.Contains(rel, "docker-") {
			// In place: the reader watches a container's memory.events.
			h.write(rel+"/memory.events", text)
			return
		}
		// Made aside and renamed: the reader is never to read half of it,
		// as it never does of the kernel's.
		h.write(rel+"/memory.events.new", text)
		if err := os.Rename(filepath.Join(h.root, rel, "memory.events.new"), filepath.Join(h.root, rel, "memory.events")); err != nil {
			t.Fatal(err)
		}
	}
	src, st := testSource(t, Config{SysFS: h.sys, ProcFS: t.TempDir()})
	// killedAndGone: a child's one kill, counted by the slice too (its
	// sliceKills-th), and the child removed before the reader read it.
	killedAndGone := func(child string, sliceKills int) {
		src.cg.mu.Lock()
		events(child, 1)
		events(slice, sliceKills)
		h.rmdir(child)
		src.cg.mu.Unlock()
	}
	h.mkdir(slice, 0)
	h.mkdir(cron, 0)
	events(cron, 2) // kills before the reader looked
	events(slice, 2)
	h.mkdir(a, 0)
	events(a, 0)
	h.mkdir(b, 0)
	events(b, 0)
	runCgroups(t, src)
	wantOOMs(t, st, "docker://"+id1, 0)

	// The service's kill: its own, nobody's to take.
	events(cron, 3)
	events(slice, 3)
	src.cg.requestRescan()
	// A's main process killed, its scope gone before its counter was read.
	var kicks atomic.Int32 // asks to read the kernel log now
	src.cg.mu.Lock()
	src.cg.onRise = func() { kicks.Add(1) }
	src.cg.mu.Unlock()
	killedAndGone(a, 4)
	wantOOMs(t, st, "docker://"+id1, 1)
	if kicks.Load() == 0 {
		t.Error("the kills given from system.slice did not ask the syslog(2) reader to read the log")
	}
	wantOOMs(t, st, "docker://"+id2, 0)

	// A transient service made after the reader looked, killed and gone:
	// its kill is nobody's.
	h.mkdir(job, 0)
	waitFor(t, func() error {
		src.cg.mu.Lock()
		defer src.cg.mu.Unlock()
		if src.cg.parents[slice].others["run-job.service"] == nil {
			return fmt.Errorf("the new service is not read")
		}
		return nil
	})
	killedAndGone(job, 5)
	waitFor(t, func() error {
		if n := st.Unattributed(); n != 1 {
			return fmt.Errorf("unattributed %d, want 1", n)
		}
		return nil
	})
	// Then B goes with a kill unread: its own, and only its own.
	killedAndGone(b, 6)
	wantOOMs(t, st, "docker://"+id2, 1)
	src.cg.scan()
	for id, want := range map[string]uint64{id1: 1, id2: 1} {
		if n, _ := ooms(st, "docker://"+id); n != want {
			t.Errorf("%.12s: %d OOMs, want %d", id, n, want)
		}
	}
	if n := st.Unattributed(); n != 1 {
		t.Errorf("unattributed %d, want 1", n)
	}
}
