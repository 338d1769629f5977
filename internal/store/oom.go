package store

import (
	"slices"
	"time"
)

// How a container's OOM kills are counted from the kernel's counters, the
// victims its log names and the runtime's reports. The rule is written down
// in docs/design.md ("OOM kills: the kernel and the runtime").

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
	prior []stamp
	// priorReports and priorVictims count the stamps folded out of prior
	// beyond priorCap.
	priorReports, priorVictims uint64
	instances                  []*instance
	settled                    uint64
	settledGroup               uint64
	hasGroup                   bool
}

type stamp struct {
	at     time.Time
	victim bool
}

type instance struct {
	id        uint64
	born      time.Time
	gone      time.Time // zero while the cgroup exists
	kills     uint64
	groupKill uint64
	victims   uint64
	// groupReports are the kernel log's reports of a memory.oom.group kill
	// of this cgroup (by the sequence number of the record that began
	// each): the group kills the log told of, should the counter be gone
	// before it was read (systemd removes a scope as soon as a group kill
	// has emptied it).
	groupReports []uint64
	// floor is what the runtime had reported for the container before the
	// kernel's counter was read: a count never goes down.
	floor uint64
	// reported: the runtime reported an OOM in the instance's lifetime, so
	// at least one process was killed in it. Its counter may be gone
	// before it was read after the kill: a container whose main process
	// was killed is removed at once, and cgroup v1 notifies no kill.
	reported  bool
	bornExact bool
}

func (in *instance) count() uint64 {
	n := max(in.kills, in.victims, in.floor)
	if in.reported && n == 0 {
		return 1
	}
	return n
}

func (c *oomCount) priorCounts() (reports, victims uint64) {
	reports, victims = c.priorReports, c.priorVictims
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
		n += in.groupKills()
	}
	return n
}

// groupKills is the instance's count of group kills: its counter's, or the
// kernel log's where the counter was read before them or not at all.
func (in *instance) groupKills() uint64 {
	return max(in.groupKill, uint64(len(in.groupReports)))
}

// groupReport takes the kernel log's report (by its first record's number)
// of a group kill of the instance's cgroup; each report counts once.
func (in *instance) groupReport(seq uint64) {
	if seq != 0 && !slices.Contains(in.groupReports, seq) {
		in.groupReports = append(in.groupReports, seq)
	}
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

// liveInstance is the newest instance that exists now; 0 if none.
func (c *oomCount) liveInstance() uint64 {
	for i := len(c.instances) - 1; i >= 0; i-- {
		if c.instances[i].gone.IsZero() {
			return c.instances[i].id
		}
	}
	return 0
}

func (c *oomCount) addPrior(s stamp) {
	c.prior = append(c.prior, s)
	if len(c.prior) > priorCap {
		old := c.prior[0]
		c.prior = c.prior[1:]
		if old.victim {
			c.priorVictims++
		} else {
			c.priorReports++
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
			if in := c.during(t); in != nil {
				in.reported = true
			}
			return
		}
	}
	c.addPrior(stamp{at: t})
}

// during returns the instance that surely lived at t, or nil. An instance's
// birth is when the reader saw its mkdir, late by up to bornSlack; a report
// is stamped when the runtime learned of the kill, a little after it. So
// near a restart, within bornSlack of the older instance's end or the newer
// one's birth, the report could be either's: none is taken.
func (c *oomCount) during(t time.Time) *instance {
	for i := len(c.instances) - 1; i >= 0; i-- {
		in := c.instances[i]
		if !in.born.IsZero() && in.born.After(t) {
			if in.born.Add(-bornSlack).Before(t) {
				return nil // it may have been born before t
			}
			continue
		}
		switch {
		case !in.gone.IsZero() && in.gone.Before(t):
			return nil // gone before t
		case i > 0 && !in.born.IsZero() && t.Sub(in.born) < bornSlack:
			return nil // the older one may have lived at t
		}
		return in
	}
	return nil
}

// victim takes a victim the kernel log named. It reports whether the victim
// counts: a record from before the exporter started counts only inside a
// cgroup instance, whose counter confirms it. groupReport is the number of
// the report's first record if the kill was a group kill of the
// container's own cgroup (whose counter counts it), else 0.
func (c *oomCount) victim(id uint64, t time.Time, live bool, groupReport uint64) bool {
	if groupReport != 0 {
		c.hasGroup = true
	}
	if id != 0 {
		for _, in := range c.instances {
			if in.id == id {
				in.victims++
				in.groupReport(groupReport)
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
			in.groupReport(groupReport)
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
		if in.id == ev.Instance {
			in.kills = max(in.kills, ev.Kills)
			in.groupKill = max(in.groupKill, ev.GroupKills)
			return
		}
	}
	in := &instance{id: ev.Instance, born: ev.Born, bornExact: ev.BornExact, kills: ev.Kills, groupKill: ev.GroupKills}
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
			r += c.priorReports
			v += c.priorVictims
			c.priorReports, c.priorVictims = 0, 0
		}
		c.prior = kept
		in.floor, in.victims = r, v
	}
	c.instances = append(c.instances, in)
	if len(c.instances) > maxInstances {
		old := c.instances[0]
		c.settled += old.count()
		c.settledGroup += old.groupKills()
		c.instances = c.instances[1:]
	}
}

// gone marks an instance removed; it reports whether none is left. An
// instance not seen before is kept as removed, so that a reading of its
// counters that comes later (read before the rmdir, applied after) counts
// without making it live again.
func (c *oomCount) gone(id uint64, t time.Time) bool {
	if !slices.ContainsFunc(c.instances, func(in *instance) bool { return in.id == id }) {
		c.counters(KernelOOMCount{Instance: id})
	}
	for _, in := range c.instances {
		if in.id == id && in.gone.IsZero() {
			in.gone = t
		}
	}
	return !c.live()
}

// MaxProcessNames and MaxHostProcessNames bound the victims' names counted
// apart, per container and for the host: any process may rename itself
// (prctl PR_SET_NAME), and each name would be a series of its own. Kills of
// further names count under OtherProcesses.
const (
	MaxProcessNames     = 10
	MaxHostProcessNames = 30
)

// MaxHostCgroups bounds the cgroups of no container whose kills are counted
// apart: anyone with a cgroup subtree of their own (a user's systemd, a job
// runner) may make cgroups of any name. Further ones count under
// OtherProcesses.
const MaxHostCgroups = 30

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
