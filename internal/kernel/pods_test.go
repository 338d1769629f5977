package kernel

import (
	"fmt"
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
