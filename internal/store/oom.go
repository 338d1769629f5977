package store

import (
	"slices"
	"strings"
	"time"
)

// The kernel's first-hand reports of OOM kills, and how the store reconciles
// them with the runtime's. The rule is written down in docs/design.md
// ("OOM kills: the kernel and the runtime").

// CgroupSource is the name of the kernel's cgroup reader among the sources;
// its container count is the containers whose memory cgroup it watches.
const CgroupSource = "cgroup"

// KernelOOMCount reports the OOM counters the kernel keeps for one instance
// of a container's memory cgroup. Each start of a container makes a new
// cgroup (even at the same path), whose counters start at 0.
type KernelOOMCount struct {
	// Meta is the container as its cgroup path tells it: Runtime (perhaps a
	// guess) and ID. A container a runtime already reported under the same
	// ID is that container, whatever the Runtime here says.
	Meta Meta
	// Cgroup names the instance, the directory from its mkdir to its
	// rmdir: a number the reader never gives to another.
	Cgroup uint64
	// Born is when the cgroup was created. BornExact is true when the
	// exporter saw the creation; else Born is the directory's change time,
	// an estimate, and the cgroup existed before the exporter looked.
	Born      time.Time
	BornExact bool
	Kills     uint64 // oom_kill
	// GroupKills is oom_group_kill (cgroup v2), meaningful when HasGroup.
	GroupKills uint64
	HasGroup   bool
	At         time.Time // when the counters were read
}

// CgroupGone reports that an instance of a container's memory cgroup was removed.
type CgroupGone struct {
	Meta   Meta
	Cgroup uint64
	At     time.Time
}

// OOMVictim reports a process the kernel log names as killed by the OOM
// killer in a container.
type OOMVictim struct {
	Meta    Meta
	Cgroup  uint64 // the instance the victim was in (as in KernelOOMCount); 0 if not known (gone when the record was read)
	Process string // the command name (comm)
	At      time.Time
	Seq     uint64 // the kernel log's sequence number: a record applied twice counts once
	// Live is false for a record that was in the kernel's log buffer before
	// the exporter started: history, counted only where a cgroup the
	// kernel still counts for confirms it.
	Live bool
}

// HostOOMKill reports an OOM kill of a process in no container.
type HostOOMKill struct {
	Process string
	At      time.Time
	Seq     uint64
	Live    bool // as in OOMVictim: history is not counted
}

func (e KernelOOMCount) key() string { return e.Meta.Key() }
func (e CgroupGone) key() string     { return e.Meta.Key() }
func (e OOMVictim) key() string      { return e.Meta.Key() }
func (e HostOOMKill) key() string    { return "" }

// kernelEvent is an event about a container as the kernel names it: by ID,
// perhaps with a guessed runtime.
type kernelEvent interface{ meta() Meta }

func (e KernelOOMCount) meta() Meta { return e.Meta }
func (e CgroupGone) meta() Meta     { return e.Meta }
func (e OOMVictim) meta() Meta      { return e.Meta }

// maxInstances is how many cgroup instances of a container stay open to late
// reports; older ones are folded into a sum.
const maxInstances = 8

// priorCap bounds the stamps kept from before the kernel saw a container's
// cgroup; older ones are kept as counts.
const priorCap = 256

// bornSlack is how much earlier a cgroup may have been made than the reader
// says it saw it made: it handles inotify's events in turn, late under load.
// A report that close to a birth is taken as the new cgroup's, whose counter
// counts its kill: a kill never counts twice, at worst a report of an
// earlier run within the slack counts in the new one's maximum.
const bornSlack = 5 * time.Second

// oomCount is everything that goes into a container's OOM count:
//
//	settled + max(reports, victims before any cgroup) + Σ over cgroup instances max(kills, victims, floor)
type oomCount struct {
	prior        []stamp
	priorOld     [2]uint64 // reports, victims folded out of prior
	instances    []*instance
	settled      uint64
	settledGroup uint64
	hasGroup     bool
}

type stamp struct {
	at     time.Time
	victim bool
}

type instance struct {
	id        uint64
	born      time.Time
	bornExact bool
	gone      time.Time // zero while the cgroup exists
	kills     uint64
	groupKill uint64
	victims   uint64
	// floor is what the runtime had reported for the container before the
	// kernel's counter was read: a count never goes down.
	floor uint64
}

func (in *instance) count() uint64 { return max(in.kills, in.victims, in.floor) }

func (c *oomCount) priorCounts() (reports, victims uint64) {
	reports, victims = c.priorOld[0], c.priorOld[1]
	for _, s := range c.prior {
		if s.victim {
			victims++
		} else {
			reports++
		}
	}
	return reports, victims
}

func (c *oomCount) total() uint64 {
	r, v := c.priorCounts()
	n := c.settled + max(r, v)
	for _, in := range c.instances {
		n += in.count()
	}
	return n
}

func (c *oomCount) groupKills() uint64 {
	n := c.settledGroup
	for _, in := range c.instances {
		n += in.groupKill
	}
	return n
}

// live reports whether some cgroup instance of the container exists now.
func (c *oomCount) live() bool {
	for _, in := range c.instances {
		if in.gone.IsZero() {
			return true
		}
	}
	return false
}

func (c *oomCount) kernelSeen() bool { return len(c.instances) > 0 || c.settled > 0 }

func (c *oomCount) addPrior(s stamp) {
	c.prior = append(c.prior, s)
	if len(c.prior) > priorCap {
		old := c.prior[0]
		c.prior = c.prior[1:]
		if old.victim {
			c.priorOld[1]++
		} else {
			c.priorOld[0]++
		}
	}
}

// report takes a runtime's report of an OOM kill at t. The runtime reports
// OOM events, not kills (Docker's "oom" fires for every OOM of the cgroup,
// also those the kernel resolved without a new kill): once the kernel counts
// for the container, its counters decide, and a report only counts for a
// time before the first cgroup the kernel saw.
func (c *oomCount) report(t time.Time) {
	if len(c.instances) > 0 {
		first := c.instances[0]
		if c.settled > 0 || !first.bornExact || !t.Before(first.born.Add(-bornSlack)) {
			return
		}
	}
	c.addPrior(stamp{at: t})
}

// victim takes a victim the kernel log named. It reports whether the victim
// counts: a record from before the exporter started counts only inside a
// cgroup instance, whose counter confirms it.
func (c *oomCount) victim(id uint64, t time.Time, live bool) bool {
	if id != 0 {
		for _, in := range c.instances {
			if in.id == id {
				in.victims++
				return true
			}
		}
	}
	// By time: the newest instance born before t (an instance born at an
	// unknown time in the past holds everything before it).
	for i := len(c.instances) - 1; i >= 0; i-- {
		in := c.instances[i]
		if (i == 0 && in.born.IsZero()) || !t.Before(in.born) {
			in.victims++
			return true
		}
	}
	if !live {
		return false
	}
	c.addPrior(stamp{at: t, victim: true})
	return true
}

// counters takes a reading of an instance's counters.
func (c *oomCount) counters(ev KernelOOMCount) {
	if ev.HasGroup {
		c.hasGroup = true
	}
	for _, in := range c.instances {
		if in.id == ev.Cgroup {
			in.kills = max(in.kills, ev.Kills)
			in.groupKill = max(in.groupKill, ev.GroupKills)
			return
		}
	}
	in := &instance{id: ev.Cgroup, born: ev.Born, bornExact: ev.BornExact, kills: ev.Kills, groupKill: ev.GroupKills}
	if len(c.instances) == 0 && c.settled == 0 {
		// The first cgroup the kernel counts for the container takes over
		// what was counted before from its time on: all of it if the cgroup
		// existed before the exporter looked.
		var kept []stamp
		var r, v uint64
		for _, s := range c.prior {
			switch {
			case in.bornExact && s.at.Before(in.born.Add(-bornSlack)):
				kept = append(kept, s)
			case s.victim:
				v++
			default:
				r++
			}
		}
		if !in.bornExact {
			r += c.priorOld[0]
			v += c.priorOld[1]
			c.priorOld = [2]uint64{}
		}
		c.prior = kept
		in.floor, in.victims = r, v
	}
	c.instances = append(c.instances, in)
	if len(c.instances) > maxInstances {
		old := c.instances[0]
		c.settled += old.count()
		c.settledGroup += old.groupKill
		c.instances = c.instances[1:]
	}
}

// gone marks an instance removed; it reports whether none is left. An
// instance not seen before is kept as removed, so that a reading of its
// counters that comes later (read before the rmdir, applied after) counts
// without making it live again.
func (c *oomCount) gone(id uint64, t time.Time) bool {
	if !slices.ContainsFunc(c.instances, func(in *instance) bool { return in.id == id }) {
		c.counters(KernelOOMCount{Cgroup: id})
	}
	for _, in := range c.instances {
		if in.id == id && in.gone.IsZero() {
			in.gone = t
		}
	}
	return !c.live()
}

// applyKernel applies a kernel event to an entry, with s.mu held.
func (s *Store) applyKernel(e *entry, ev Event) {
	before := e.ooms.total()
	switch ev := ev.(type) {
	case KernelOOMCount:
		e.ooms.counters(ev)
		if e.kernelRemoved && e.ooms.live() {
			e.removedAt, e.kernelRemoved = time.Time{}, false
		}
		if e.ooms.total() > before {
			e.lastKill = latest(e.lastKill, ev.At)
		}
	case CgroupGone:
		if e.ooms.gone(ev.Cgroup, ev.At) && !e.observed && e.removedAt.IsZero() {
			// A container only the kernel knows: gone with its cgroup (the
			// series stay for the retention, and come back if it starts again).
			e.removedAt, e.kernelRemoved = ev.At, true
		}
	case OOMVictim:
		if !s.newRecord(ev.Seq) {
			return
		}
		if e.ooms.victim(ev.Cgroup, ev.At, ev.Live) {
			e.byProcess = countProcess(e.byProcess, ev.Process, 1, MaxProcessNames)
			e.lastKill = latest(e.lastKill, ev.At)
		}
		if !e.observed && !e.ooms.live() && e.removedAt.IsZero() {
			// Known only from the kernel log, its cgroup gone: kept for the
			// retention like a removed container.
			e.removedAt, e.kernelRemoved = ev.At, true
		}
	}
}

// MaxProcessNames and MaxHostProcessNames bound the victims' names counted
// apart, per container and for the host: any process may rename itself
// (prctl PR_SET_NAME), and each name would be a series of its own. Kills of
// further names count under OtherProcesses.
const (
	MaxProcessNames     = 10
	MaxHostProcessNames = 30
)

// OtherProcesses is the name under which kills of processes beyond
// MaxProcessNames count (and those of a process named "other").
const OtherProcesses = "other"

// countProcess adds n kills of process to m, the kills by name, folding a
// name beyond limit into OtherProcesses. It returns m, made if nil.
func countProcess(m map[string]uint64, process string, n uint64, limit int) map[string]uint64 {
	if m == nil {
		m = map[string]uint64{}
	}
	if _, ok := m[process]; !ok {
		named := len(m)
		if _, ok := m[OtherProcesses]; ok {
			named--
		}
		if named >= limit {
			process = OtherProcesses
		}
	}
	m[process] += n
	return m
}

// newRecord reports whether the kernel log record seq is new: records come
// in order, and a source that reads the log again from its start sends old
// ones again.
func (s *Store) newRecord(seq uint64) bool {
	if s.kmsgSeen && seq <= s.kmsgSeq {
		return false
	}
	s.kmsgSeq, s.kmsgSeen = seq, true
	return true
}

// keyFor returns the key under which the store keeps the container a kernel
// event names: the one a runtime reported with that ID, else the kernel's.
func (s *Store) keyFor(m Meta) string {
	if k, ok := s.ids[m.ID]; ok {
		return k
	}
	return m.Key()
}

// adopt moves a container the kernel reported under a guessed runtime to the
// key a runtime reports it under.
func (s *Store) adopt(k string) {
	id := idOf(k)
	old, ok := s.ids[id]
	if !ok || old == k {
		return
	}
	src := s.containers[old]
	if src == nil || src.observed {
		return // two runtimes report the same id: keep each
	}
	dst := s.containers[k]
	if dst == nil {
		dst = src
		dst.Meta.Runtime = runtimeOf(k)
		s.containers[k] = dst
	} else if !dst.ooms.kernelSeen() {
		dst.ooms.instances, dst.ooms.settled, dst.ooms.settledGroup, dst.ooms.hasGroup =
			src.ooms.instances, src.ooms.settled, src.ooms.settledGroup, src.ooms.hasGroup
		for p, n := range src.byProcess {
			dst.byProcess = countProcess(dst.byProcess, p, n, MaxProcessNames)
		}
		dst.lastKill = latest(dst.lastKill, src.lastKill)
	}
	delete(s.containers, old)
	s.ids[id] = k
}

func idOf(k string) string {
	_, id, _ := strings.Cut(k, "://")
	return id
}

func runtimeOf(k string) string {
	r, _, _ := strings.Cut(k, "://")
	return r
}

// silent reports whether no source of runtime answers: none is configured,
// or it failed to connect. Containers only the kernel knows are exported
// then, with the labels their cgroup path gives.
func (s *Store) silent(runtime string) bool {
	src := s.sources[runtime]
	return src == nil || (!src.Up && src.LastError != "")
}

// OnOOMReport registers f to be called, outside the store's lock, with the
// key of a container whenever a runtime reports an OOM kill in it: cgroup v1
// has no notification of a kill, so the kernel reader reads the counters then.
func (s *Store) OnOOMReport(f func(key string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onOOM = f
}

// Target is a running container whose memory cgroup the kernel reader has
// not found by its path: its main process's pid tells where it is.
type Target struct {
	Meta Meta
	Pid  int
}

// Unwatched returns the running containers with a known main-process pid
// that have no live cgroup instance.
func (s *Store) Unwatched() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Target
	for _, e := range s.containers {
		if e.observed && e.pid > 0 && e.removedAt.IsZero() && !e.ooms.live() {
			out = append(out, Target{Meta: e.Meta, Pid: e.pid})
		}
	}
	return out
}
