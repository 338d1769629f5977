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

// The parent cgroup of containers' cgroups on cgroup v2 (a kubelet pod's,
// system.slice for Docker with the systemd driver, Docker's /docker), for
// the kills its containers' own counters could not tell. With the systemd
// driver, systemd removes a container's scope as soon as a kill has emptied
// it (a group kill, its main process's kill): often before the reader read
// its memory.events, and without the kernel log nothing else counts that
// kill. The parent outlives its containers, and its memory.events counts
// their kills too (v2 counts a kill in every ancestor of the victim's
// cgroup). So the parent's kills since the reader looked, less its own
// processes' (memory.events.local), less what its containers' counters
// counted and less what its other children counted (system.slice's
// services), are kills of a container whose cgroup went before its counter
// was read: given to it where it is the only child gone since the last
// look, else counted as not attributed (never to two, never twice).

// parent is a cgroup that holds containers' cgroups the reader tracks.
type parent struct {
	dir string
	// base and localBase are its oom_kill of memory.events and of
	// memory.events.local at the first reading; kills and local the newest.
	// The same for oom_group_kill (a group kill of a container's cgroup
	// counts in the parent's too).
	base, localBase, kills, local                 uint64
	groupBase, groupLocalBase, groups, groupLocal uint64
	read                                          bool
	readAt                                        time.Time // the first reading
	// children are its containers' instances the reader tracked since, live
	// and gone (until a reading after their removal settled them).
	children map[uint64]*tracked
	gone     map[uint64]bool // children removed since the last settling
	// others are its children that are no containers (system.slice's
	// services), by name.
	others  map[string]*other
	lost    uint64 // kills no child could be given
	settled uint64 // kills of the children settled and let go
	// The same for group kills.
	groupsLost, groupsSettled uint64
}

// other is a child cgroup of a parent that is no container's: its kills
// count in the parent's, and are not a container's.
type other struct {
	ino               uint64
	base, kills       uint64
	groupBase, groups uint64
}

// parentDir returns the cgroup that holds a container's cgroup dir, ""
// where that is the root, which has no memory.events.
func parentDir(ct ContainerCgroup) string {
	if d := filepath.Dir(ct.Dir); d != "/" && d != "." {
		return d
	}
	return ""
}

// adopt notes a container instance of the parent at its dir (v2 only): the
// parent's cgroup is read from then on, when one of its containers goes and
// at each walk. Not when its memory.events changes: a kill counts in the
// parent as in the container, before the victim dies, so the container's
// removal comes after it; and on system.slice, which holds every Docker
// container of the systemd driver and every service, any memory event
// below (every reclaim at a limit) would read them all.
func (c *cgroups) adopt(t *tracked) {
	dir := parentDir(t.c)
	if dir == "" || !c.v2() {
		return
	}
	c.mu.Lock()
	p := c.parents[dir]
	first := p == nil
	if first {
		p = &parent{dir: dir, children: map[uint64]*tracked{}, gone: map[uint64]bool{}, others: map[string]*other{}}
		c.parents[dir] = p
	}
	p.children[t.id] = t
	c.mu.Unlock()
	if first {
		c.settle(dir)
	}
}

// childGone notes that a container instance was removed: its counter may
// not have been read after its last kill.
func (c *cgroups) childGone(t *tracked) {
	dir := parentDir(t.c)
	c.mu.Lock()
	p := c.parents[dir]
	if p != nil && p.children[t.id] != nil {
		p.gone[t.id] = true
	}
	c.mu.Unlock()
	if p != nil {
		c.settle(dir)
	}
}

// otherChanged settles the parent of a cgroup made or removed that is no
// container's (a service beside Docker's containers in system.slice): one
// made is read from its start, and one removed is let go with what was
// read of it, so that its kills are never taken for a container's.
func (c *cgroups) otherChanged(rel string) {
	dir := filepath.Dir(rel)
	c.mu.Lock()
	followed := c.parents[dir] != nil
	c.mu.Unlock()
	if followed && !c.containerDir(rel) && !c.tracks(rel) {
		c.settle(dir)
	}
}

// settle reads the parent's counters, its live containers' and its other
// children's, and gives the kills nobody counted to the one container whose
// cgroup went since the last look. A reading of a gone instance goes to the
// store as any late reading does: the larger of it and what was counted.
func (c *cgroups) settle(dir string) {
	// The parent, its live children, the parent again, until the parent's
	// reading holds still: a kill counts in the child and the parent at once.
	// Children found removed before the parent's last reading are gone,
	// with all their kills in that reading (a kill counts before its victim
	// dies, and its cgroup goes after).
	var now, before parentCounters
	var others map[string]otherReading
	var vanished map[uint64]bool
	var err error
	for range 3 {
		if before, err = c.readParent(dir); err != nil {
			break
		}
		vanished = map[uint64]bool{}
		for _, t := range c.children(dir) {
			c.read(t.c.Dir)
			if st, err := c.stat(t.c.Dir); err != nil || st.ino != t.ino {
				vanished[t.id] = true // its removal not told yet
			}
		}
		others = c.readOthers(dir)
		if now, err = c.readParent(dir); err != nil || now == before {
			break
		}
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		c.mu.Lock()
		delete(c.parents, dir) // the parent is gone, and its containers with it
		c.mu.Unlock()
		return
	}
	if err != nil {
		c.log.Warn("cannot read the OOM counters of a cgroup that holds containers", "cgroup", dir, "err", err)
		return
	}
	c.mu.Lock()
	p := c.parents[dir]
	if p == nil {
		c.mu.Unlock()
		return
	}
	first := !p.read
	if first {
		p.read, p.readAt = true, time.Now()
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
	// Its other children: those gone since the last look may have had kills
	// after it, which the parent counts and nobody can tell apart.
	othersGone := p.note(others, first)
	// The kills in its children since the reader looked: in the parent, less
	// those of its own processes; the same for group kills.
	all := sub(sub(p.kills, p.base), sub(p.local, p.localBase))
	allGroups := sub(sub(p.groups, p.groupBase), sub(p.groupLocal, p.groupLocalBase))
	known, knownGroups := p.lost+p.settled, p.groupsLost+p.groupsSettled
	for _, o := range p.others {
		known += sub(o.kills, o.base)
		knownGroups += sub(o.groups, o.groupBase)
	}
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
	missing, missingGroups := sub(all, known), sub(allGroups, knownGroups)
	switch {
	case missing == 0 && missingGroups == 0:
	case len(gone) == 1 && othersGone == 0:
		give = gone[0]
		give.kills += missing
		give.groups += missingGroups
		send = store.KernelOOMCount{Cgroup: c.cgroupLocked(give), Instance: give.id, Born: give.born, BornExact: give.bornExact,
			Kills: give.kills, GroupKills: give.groups, HasGroup: true, At: time.Now()}
	default:
		p.lost += missing
		p.groupsLost += missingGroups
		lost = missing
		c.log.Warn("OOM kills in a cgroup that holds containers that none of its children counted, and that cannot be told to one",
			"cgroup", dir, "kills", missing, "group_kills", missingGroups, "containers_gone", len(gone), "others_gone", othersGone)
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
		c.log.Debug("OOM kills of a container whose cgroup went before its counter was read, from the cgroup above it", "cgroup", give.c.Dir, "kills", give.kills)
		c.store.Apply(send)
	}
	// Kills a container's own counter never showed: the syslog(2) reader
	// reads their reports now, not at its next poll, so that they are
	// described before their records are announced.
	if (give != nil || lost > 0) && c.onRise != nil {
		c.onRise()
	}
}

// note takes the readings of the parent's other children, with c.mu held:
// a child first seen counts from its first reading, or from 0 if it was
// made after the parent's first (its kills are all since the reader
// looked). Children gone (or made again) are settled: what was read of
// them stays known. It returns how many went.
func (p *parent) note(readings map[string]otherReading, first bool) int {
	gone := 0
	for name, o := range p.others {
		if r, ok := readings[name]; !ok || r.ino != o.ino {
			p.settled += sub(o.kills, o.base)
			p.groupsSettled += sub(o.groups, o.groupBase)
			delete(p.others, name)
			gone++
		}
	}
	for name, r := range readings {
		o := p.others[name]
		if o == nil {
			o = &other{ino: r.ino}
			if first || r.born.Before(p.readAt) {
				o.base, o.groupBase = r.kills, r.groups
			}
			p.others[name] = o
		}
		o.kills, o.groups = max(o.kills, r.kills), max(o.groups, r.groups)
	}
	return gone
}

// otherReading is a reading of a parent's child that is no container's.
type otherReading struct {
	ino           uint64
	born          time.Time
	kills, groups uint64
}

// readOthers reads the counters of the parent's children that are no
// tracked container's.
func (c *cgroups) readOthers(dir string) map[string]otherReading {
	abs := c.abs(dir)
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil
	}
	out := map[string]otherReading{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		rel := filepath.Join(dir, e.Name())
		if c.tracks(rel) || c.containerDir(rel) {
			continue // a container's: its own counter counts, once tracked
		}
		st, err := c.stat(rel)
		if err != nil {
			continue // gone while listed
		}
		b, err := readFile(filepath.Join(abs, e.Name(), "memory.events"))
		if err != nil {
			continue // gone, or no memory controller there: none of its kills count above
		}
		n, err := ParseMemoryEvents(b)
		if err != nil {
			continue
		}
		out[e.Name()] = otherReading{ino: st.ino, born: st.ctime, kills: n.Kills, groups: n.GroupKills}
	}
	return out
}

// children returns the parent's live container instances.
func (c *cgroups) children(dir string) []*tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parents[dir]
	if p == nil {
		return nil
	}
	var out []*tracked
	for id, t := range p.children {
		if !p.gone[id] {
			out = append(out, t)
		}
	}
	return out
}

// parentCounters are a parent's oom_kill and oom_group_kill, of
// memory.events (its children's too) and of memory.events.local (its own
// processes').
type parentCounters struct{ kills, local, groups, groupLocal uint64 }

// readParent reads a parent's counters.
func (c *cgroups) readParent(dir string) (parentCounters, error) {
	abs := c.abs(dir)
	b, err := readFile(filepath.Join(abs, "memory.events"))
	if err != nil {
		return parentCounters{}, err
	}
	n, err := ParseMemoryEvents(b)
	if err != nil {
		return parentCounters{}, err
	}
	pc := parentCounters{kills: n.Kills, groups: n.GroupKills}
	// memory.events.local (Linux 5.2 and later): the parent's own
	// processes' kills, which are no container's.
	if b, err := readFile(filepath.Join(abs, "memory.events.local")); err == nil {
		if l, err := ParseMemoryEvents(b); err == nil {
			pc.local, pc.groupLocal = l.Kills, l.GroupKills
		}
	}
	return pc, nil
}

// sub is a - b, or 0 where b is more.
func sub(a, b uint64) uint64 { return a - min(a, b) }
