package kernel

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// A kubelet pod's cgroup on cgroup v2, for the kills its containers' own
// counters could not tell. With the systemd driver, systemd removes a
// container's scope as soon as a kill has emptied it (a group kill, its main
// process's kill): often before the reader read its memory.events, and
// without the kernel log nothing else counts that kill. The pod's cgroup
// outlives its containers, and its memory.events counts their kills too
// (v2 counts a kill in every ancestor of the victim's cgroup). So the
// pod's kills since the reader looked, less its own processes' kills
// (memory.events.local) and less what its containers' counters counted,
// are kills of a container whose cgroup went before its counter was read:
// given to it where it is the only such container since the last look,
// else counted as not attributed (never to two, never twice).

// pod is the cgroup of a kubelet pod whose containers the reader tracks.
type pod struct {
	dir string
	// base and localBase are its oom_kill of memory.events and of
	// memory.events.local at the first reading; kills and local the newest.
	// The same for oom_group_kill (a group kill of a container's cgroup
	// counts in the pod's too).
	base, localBase, kills, local                 uint64
	groupBase, groupLocalBase, groups, groupLocal uint64
	read                                          bool
	// children are its containers' instances the reader tracked since, live
	// and gone (until a reading after their removal settled them).
	children map[uint64]*tracked
	gone     map[uint64]bool // children removed since the last settling
	lost     uint64          // kills no child could be given
	settled  uint64          // kills of the children settled and let go
	// The same for group kills.
	groupsLost, groupsSettled uint64
}

// podDir returns the kubelet pod cgroup that holds a container's cgroup
// dir, "" if none: pod<UID> (cgroupfs) or kubepods-…-pod<UID>.slice (systemd).
func podDir(ct ContainerCgroup) string {
	if ct.PodUID == "" {
		return ""
	}
	return filepath.Dir(ct.Dir)
}

// adopt notes a container instance of the pod at its dir (v2 only): the
// pod's cgroup is read, and its memory.events watched, from then on.
func (c *cgroups) adopt(t *tracked) {
	dir := podDir(t.c)
	if dir == "" || !c.v2() {
		return
	}
	c.mu.Lock()
	p := c.pods[dir]
	first := p == nil
	if first {
		p = &pod{dir: dir, children: map[uint64]*tracked{}, gone: map[uint64]bool{}}
		c.pods[dir] = p
	}
	p.children[t.id] = t
	c.mu.Unlock()
	if first {
		c.addFileWatch(c.abs(dir))
		c.settlePod(dir)
	}
}

// childGone notes that a container instance of a pod was removed: its
// counter may not have been read after its last kill.
func (c *cgroups) childGone(t *tracked) {
	dir := podDir(t.c)
	c.mu.Lock()
	p := c.pods[dir]
	if p != nil && p.children[t.id] != nil {
		p.gone[t.id] = true
	}
	c.mu.Unlock()
	if p != nil {
		c.settlePod(dir)
	}
}

// isPod reports whether dir is a pod's cgroup the reader follows.
func (c *cgroups) isPod(dir string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pods[dir] != nil
}

// settlePod reads the pod's counters and its live containers', and gives
// the kills no container counted to the one container whose cgroup went
// since the last look. A reading of a gone instance goes to the store as
// any late reading does: the larger of it and what was counted.
func (c *cgroups) settlePod(dir string) {
	// The pod, its live containers, the pod again, until the pod's reading
	// holds still: a kill counts in the container and the pod at once.
	var now, before podCounters
	var err error
	for range 3 {
		if before, err = c.readPod(dir); err != nil {
			break
		}
		for _, t := range c.podChildren(dir, false) {
			c.read(t.c.Dir)
		}
		if now, err = c.readPod(dir); err != nil || now == before {
			break
		}
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		c.mu.Lock()
		delete(c.pods, dir) // the pod is gone, and its containers with it
		c.mu.Unlock()
		return
	}
	if err != nil {
		c.log.Warn("cannot read a pod's OOM counters", "cgroup", dir, "err", err)
		return
	}
	// Children removed whose removal the watcher has not told yet: gone too.
	vanished := map[uint64]bool{}
	for _, t := range c.podChildren(dir, false) {
		if st, err := c.stat(t.c.Dir); err != nil || st.ino != t.ino {
			vanished[t.id] = true
		}
	}
	c.mu.Lock()
	p := c.pods[dir]
	if p == nil {
		c.mu.Unlock()
		return
	}
	if !p.read {
		p.read = true
		p.base, p.localBase, p.groupBase, p.groupLocalBase = now.kills, now.local, now.groups, now.groupLocal
		for _, t := range p.children {
			if t.read && t.bornExact {
				// Counted since the reader looked.
				p.base -= min(p.base, t.kills)
				p.groupBase -= min(p.groupBase, t.groups)
			}
		}
	}
	p.kills, p.local = max(p.kills, now.kills), max(p.local, now.local)
	p.groups, p.groupLocal = max(p.groups, now.groups), max(p.groupLocal, now.groupLocal)
	// The kills in its containers since the reader looked: in the pod, less
	// those of its own processes; the same for group kills.
	pod := sub(sub(p.kills, p.base), sub(p.local, p.localBase))
	podGroups := sub(sub(p.groups, p.groupBase), sub(p.groupLocal, p.groupLocalBase))
	known, knownGroups := p.lost+p.settled, p.groupsLost+p.groupsSettled
	var gone []*tracked
	for id, t := range p.children {
		known += sub(t.kills, t.base)
		knownGroups += sub(t.groups, t.groupBase)
		if p.gone[id] || vanished[id] {
			gone = append(gone, t)
		}
	}
	var give *tracked
	var send store.KernelOOMCount
	var lost uint64
	missing, missingGroups := sub(pod, known), sub(podGroups, knownGroups)
	switch {
	case missing == 0 && missingGroups == 0:
	case len(gone) == 1:
		give = gone[0]
		give.kills += missing
		give.groups += missingGroups
		send = store.KernelOOMCount{Cgroup: c.cgroupLocked(give), Instance: give.id, Born: give.born, BornExact: give.bornExact,
			Kills: give.kills, GroupKills: give.groups, HasGroup: true, At: time.Now()}
	default:
		p.lost += missing
		p.groupsLost += missingGroups
		lost = missing
		c.log.Warn("OOM kills in a pod's cgroup that no container of it counted, and that cannot be told to one",
			"cgroup", dir, "kills", missing, "group_kills", missingGroups, "containers_gone", len(gone))
	}
	// Removed before this reading: their kills are all counted now.
	for _, t := range gone {
		p.settled += sub(t.kills, t.base)
		p.groupsSettled += sub(t.groups, t.groupBase)
		delete(p.children, t.id)
	}
	p.gone = map[uint64]bool{}
	c.mu.Unlock()
	if lost > 0 {
		c.store.CountUnattributed(lost)
	}
	if give != nil {
		c.log.Debug("OOM kills of a container whose cgroup went before its counter was read, from its pod's", "cgroup", give.c.Dir, "kills", give.kills)
		c.store.Apply(send)
	}
}

// podChildren returns the pod's live container instances (with gone, the
// removed ones too).
func (c *cgroups) podChildren(dir string, gone bool) []*tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pods[dir]
	if p == nil {
		return nil
	}
	var out []*tracked
	for id, t := range p.children {
		if gone || !p.gone[id] {
			out = append(out, t)
		}
	}
	return out
}

// podCounters are a pod's oom_kill and oom_group_kill, of memory.events
// (its containers' too) and of memory.events.local (its own processes').
type podCounters struct{ kills, local, groups, groupLocal uint64 }

// readPod reads a pod's counters.
func (c *cgroups) readPod(dir string) (podCounters, error) {
	abs := c.abs(dir)
	b, err := os.ReadFile(filepath.Join(abs, "memory.events"))
	if err != nil {
		return podCounters{}, err
	}
	n, err := ParseMemoryEvents(b)
	if err != nil {
		return podCounters{}, err
	}
	pc := podCounters{kills: n.Kills, groups: n.GroupKills}
	// memory.events.local (Linux 5.2 and later): the pod cgroup's own
	// processes' kills, which are no container's.
	if b, err := os.ReadFile(filepath.Join(abs, "memory.events.local")); err == nil {
		if l, err := ParseMemoryEvents(b); err == nil {
			pc.local, pc.groupLocal = l.Kills, l.GroupKills
		}
	}
	return pc, nil
}

// sub is a - b, or 0 where b is more.
func sub(a, b uint64) uint64 { return a - min(a, b) }
