package store

import (
	"slices"
	"time"
)

// The kernel's first-hand reports of OOM kills, and how the store reconciles
// them with the runtime's. The rule is written down in docs/design.md
// ("OOM kills: the kernel and the runtime").

// Cgroup is a container's memory cgroup as the kernel reader found it.
type Cgroup struct {
	// Meta is the container as the cgroup's path names it: Runtime (a
	// guess if Guessed) and ID. For a cgroup found through the main pid a
	// runtime gave (ByPid), it is that runtime's container.
	Meta    Meta
	Path    string // from the root of the hierarchy
	Guessed bool
	ByPid   bool
}

// KernelOOMCount reports the OOM counters the kernel keeps for one instance
// of a container's memory cgroup. Each start of a container makes a new
// cgroup (even at the same path), whose counters start at 0.
//
// The counters are the container's whose runtime reports its id, when it
// is the only one of that runtime (any runtime, if the path's is a guess)
// with that id; else, or until a runtime reports it, they are a container's
// that only the kernel knows.
type KernelOOMCount struct {
	Cgroup Cgroup
	// Instance names the directory from its mkdir to its rmdir: a number
	// the reader never gives to another.
	Instance uint64
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
	Cgroup   Cgroup
	Instance uint64
	At       time.Time
}

// OOMVictim reports a process the kernel log names as killed by the OOM
// killer in a container.
type OOMVictim struct {
	Cgroup   Cgroup
	Instance uint64 // the instance the victim was in (as in KernelOOMCount); 0 if not known (gone when the record was read)
	Process  string // the command name (comm)
	At       time.Time
	Seq      uint64 // the kernel log's sequence number: a record applied twice counts once
	// Live is false for a record that was in the kernel's log buffer before
	// the exporter started: history, counted only where a cgroup the
	// kernel still counts for confirms it.
	Live bool
	// Details is what else the kernel log says of the kill.
	Details KillDetails
}

// UnplacedVictim reports a process the kernel log names as killed by the
// OOM killer whose cgroup it does not give (its report was rate-limited)
// and that was gone before the reader could look. If it was the main
// process of a running container (Details.PID against the pid its runtime
// gave), the kill is that container's; else it is recorded, and counts
// nowhere but in the cgroup's counter.
type UnplacedVictim struct {
	Process string
	At      time.Time
	Seq     uint64
	Live    bool
	Details KillDetails
}

// HostOOMKill reports an OOM kill of a process in no container.
type HostOOMKill struct {
	Process string
	At      time.Time
	Seq     uint64
	Live    bool // as in OOMVictim: history is not counted
	Details KillDetails
}

func (e KernelOOMCount) key() string { return "" }
func (e CgroupGone) key() string     { return "" }
func (e OOMVictim) key() string      { return "" }
func (e HostOOMKill) key() string    { return "" }
func (e UnplacedVictim) key() string { return "" }

// kernelEvent is an event about a container as the kernel names it: by its
// cgroup.
type kernelEvent interface{ cgroup() Cgroup }

func (e KernelOOMCount) cgroup() Cgroup { return e.Cgroup }
func (e CgroupGone) cgroup() Cgroup     { return e.Cgroup }
func (e OOMVictim) cgroup() Cgroup      { return e.Cgroup }

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
	bornExact bool
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
	reported bool
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

// applyKernel applies a kernel event to an entry, with s.mu held.
// It reports whether a victim counted, and whether what the event counts
// happened before the exporter started: a victim from the log's buffer,
// the kills of a cgroup at its first reading when it existed before the
// reader looked.
func (s *Store) applyKernel(e *entry, ev Event) (counted, history bool) {
	before := e.ooms.total()
	switch ev := ev.(type) {
	case KernelOOMCount:
		history = !ev.BornExact && !slices.ContainsFunc(e.ooms.instances, func(in *instance) bool { return in.id == ev.Instance })
		e.ooms.counters(ev)
		if e.kernelRemoved && e.ooms.live() {
			e.removedAt, e.kernelRemoved = time.Time{}, false
		}
		if e.ooms.total() > before {
			e.LastOOM = latest(e.LastOOM, ev.At)
		}
	case CgroupGone:
		if e.ooms.gone(ev.Instance, ev.At) && !e.observed && e.removedAt.IsZero() {
			// A container only the kernel knows: gone with its cgroup (the
			// series stay for the retention, and come back if it starts again).
			e.removedAt, e.kernelRemoved = ev.At, true
		}
	case OOMVictim:
		history = !ev.Live
		if !s.newRecord(ev.Seq) {
			return false, history
		}
		var groupReport uint64
		if d := ev.Details; d.Group != "" && d.Group == ev.Cgroup.Path {
			// The kernel counts a group kill in the group's cgroup (and
			// those above it), so in the container's counter only where
			// the group is the container's own cgroup.
			groupReport = d.ReportSeq
		}
		if e.ooms.victim(ev.Instance, ev.At, ev.Live, groupReport) {
			e.byProcess = countProcess(e.byProcess, ev.Process, 1, MaxProcessNames)
			e.LastOOM = latest(e.LastOOM, ev.At)
			counted = true
		}
		if !e.observed && !e.ooms.live() && e.removedAt.IsZero() {
			// Known only from the kernel log, its cgroup gone: kept for the
			// retention like a removed container.
			e.removedAt, e.kernelRemoved = ev.At, true
		}
	}
	return counted, history
}

// historyKept bounds the victims of the log's buffer a container keeps
// until a runtime tells when its last run was.
const historyKept = 16

// keepHistory keeps a victim from the kernel log's buffer (from before the
// exporter started) that no cgroup the reader saw holds: its container's
// cgroup was gone already.
func (e *entry) keepHistory(v OOMVictim) {
	if len(e.history) < historyKept {
		e.history = append(e.history, v)
	}
}

// placeHistory counts the kept victims from the log's buffer that fall in
// the container's last run, which ended before the exporter started: its
// runtime says when it ran (and the runtime's own flag of a kill, taken at
// first sight, counts the same kill: the larger of the two counts). Victims
// of older runs are let go. It returns their records. With s.mu held.
func (s *Store) placeHistory(e *entry) []*Kill {
	if len(e.history) == 0 || !e.observed || e.running || e.startedAt.IsZero() || e.finished.Before(e.startedAt) {
		return nil
	}
	for _, v := range e.history {
		if v.At.Before(e.startedAt) || v.At.After(e.finished) || e.ooms.kernelSeen() {
			continue
		}
		before := e.ooms.total()
		e.ooms.addPrior(stamp{at: v.At, victim: true})
		e.byProcess = countProcess(e.byProcess, v.Process, 1, MaxProcessNames)
		e.LastOOM = latest(e.LastOOM, v.At)
		if e.ooms.total() > before {
			e.recorded++
		}
		s.kills.add(&Kill{Time: v.At, Container: e.Meta, Process: v.Process, From: FromKernelLog, Details: v.Details})
		s.noteMainKill(e, v.At, v.Details)
	}
	e.history = nil
	return nil
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

// kernelKey is the key of a container only the kernel knows: its cgroup's path.
func kernelKey(path string) string { return "cgroup:" + path }

// keyFor returns the key under which the store keeps the container of a
// cgroup: that of the one runtime container it can be, else the cgroup's own.
func (s *Store) keyFor(cg Cgroup) string {
	if cg.ByPid {
		return cg.Meta.Key() // the runtime's own container: its process is in the cgroup
	}
	if keys := s.owners(cg.Meta.ID, cg.Meta.Runtime, cg.Guessed, ""); len(keys) == 1 {
		return keys[0]
	}
	return kernelKey(cg.Path)
}

// owners returns the keys of the runtimes' containers with the id that a
// cgroup of runtime (any runtime if guessed) can belong to; extra, a key
// about to be made, counts among them. Two containerd containers with one
// id in two namespaces both can: the cgroup's path does not say whose.
func (s *Store) owners(id, runtime string, guessed bool, extra string) []string {
	var out []string
	for _, k := range s.ids[id] {
		if e := s.containers[k]; !e.fromKernel && (guessed || e.Meta.Runtime == runtime) {
			out = append(out, k)
		}
	}
	if extra != "" && !slices.Contains(out, extra) {
		if m := parseKey(extra); guessed || m.Runtime == runtime {
			out = append(out, extra)
		}
	}
	return out
}

// adopt moves what the kernel reader counted for a container only it knew
// to k, the key under which a runtime now reports it, when that container is
// the only one the cgroup can belong to.
func (s *Store) adopt(k string) {
	m := parseKey(k)
	for _, old := range s.ids[m.ID] {
		src := s.containers[old]
		if !src.fromKernel {
			continue
		}
		if owners := s.owners(m.ID, src.Meta.Runtime, src.guessed, k); len(owners) != 1 || owners[0] != k {
			continue
		}
		dst := s.containers[k]
		if dst == nil {
			// The whole entry moves, under the runtime's name.
			s.forget(old)
			src.fromKernel, src.guessed = false, false
			src.Meta = m
			s.containers[k] = src
			s.ids[m.ID] = append(s.ids[m.ID], k)
			return
		}
		if !dst.ooms.kernelSeen() {
			dst.ooms.instances, dst.ooms.settled, dst.ooms.settledGroup, dst.ooms.hasGroup =
				src.ooms.instances, src.ooms.settled, src.ooms.settledGroup, src.ooms.hasGroup
			for p, n := range src.byProcess {
				dst.byProcess = countProcess(dst.byProcess, p, n, MaxProcessNames)
			}
			dst.LastOOM = latest(dst.LastOOM, src.LastOOM)
			// The records of its kills go with them.
			dst.recorded += src.recorded
			dst.history = append(dst.history, src.history...)
			dst.unfilled = append(dst.unfilled, src.unfilled...)
			dst.lastMainKill = latest(dst.lastMainKill, src.lastMainKill)
			for sc, n := range src.byScope {
				if dst.byScope == nil {
					dst.byScope = map[string]uint64{}
				}
				dst.byScope[sc] += n
			}
			if src.HasLastOOMUsage {
				dst.LastOOMUsage, dst.LastOOMLimit, dst.HasLastOOMUsage = src.LastOOMUsage, src.LastOOMLimit, true
			}
		}
		s.forget(old)
		return
	}
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
