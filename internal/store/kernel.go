package store

import (
	"slices"
	"strings"
	"time"
)

// The kernel reader's side of the store: the events it sends, how they
// apply to a container, and how a container only the kernel knows is
// keyed, exported and adopted once a runtime reports it. The rule is
// written down in docs/design.md ("OOM kills: the kernel and the runtime").

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
	// Pressure is what the cgroup counts of memory pressure (pressure.go);
	// PressureSampled says every counter of it the kernel gives was read
	// now, not only those of memory.events.
	Pressure        MemoryPressure
	PressureSampled bool
	At              time.Time // when the counters were read
}

// CgroupGone reports that an instance of a container's memory cgroup was removed.
type CgroupGone struct {
	Cgroup   Cgroup
	Instance uint64
	At       time.Time
}

// OOMVictim reports a process the kernel log names as killed by the OOM
// killer, placed by the kernel reader: in a container's cgroup (Cgroup), in
// a cgroup that is no container's (Host), or nowhere it could tell (an
// unplaced victim: neither). The store counts it, and makes or joins the
// record of its report (Details.ReportSeq).
type OOMVictim struct {
	// Cgroup is the container's memory cgroup the victim was in; zero
	// when it was in none (Host) or in none known. A victim placed by its
	// container's main pid has Cgroup.ByPid set.
	Cgroup   Cgroup
	Instance uint64 // the instance the victim was in (as in KernelOOMCount); 0 if not known (gone when the record was read)
	Host     bool   // its cgroup is known and is no container's
	// HostCgroup is that cgroup, for a victim in no container.
	HostCgroup string
	Process    string // the command name (comm)
	At         time.Time
	Seq        uint64 // the kernel log's sequence number: a record applied twice counts once
	// Live is false for a record that was in the kernel's log buffer before
	// the exporter started: history, counted where the runtime says the
	// container ran then, never announced.
	Live bool
	// NSInit says whether the victim was pid 1 of its pid namespace, as
	// /proc said while it died; nil if not known. Whether it was its
	// container's main process is decided from the main pid its runtime
	// gave, and from this only where the runtime gave none.
	NSInit *bool
	// Details is what else the kernel log says of the kill.
	Details KillDetails
}

// placed reports whether the victim is in a container.
func (v OOMVictim) placed() bool { return !v.Host && (v.Cgroup.Path != "" || v.Cgroup.ByPid) }

func (e KernelOOMCount) key() string { return "" }
func (e CgroupGone) key() string     { return "" }
func (e OOMVictim) key() string      { return "" }

// kernelEvent is an event about a container as the kernel names it: by its
// cgroup.
type kernelEvent interface{ cgroup() Cgroup }

func (e KernelOOMCount) cgroup() Cgroup { return e.Cgroup }
func (e CgroupGone) cgroup() Cgroup     { return e.Cgroup }
func (e OOMVictim) cgroup() Cgroup      { return e.Cgroup }

// applyKernel applies a reading of a cgroup's counters, or its removal,
// to an entry, with s.mu held. It reports whether what a reading counts
// happened before the exporter started: the kills of a cgroup at its first
// reading when it existed before the reader looked, unless its runtime said
// the container started after the exporter did.
func (s *Store) applyKernel(e *entry, ev Event) (history bool) {
	before := e.ooms.total()
	switch ev := ev.(type) {
	case KernelOOMCount:
		history = !ev.BornExact && !slices.ContainsFunc(e.ooms.instances, func(in *instance) bool { return in.id == ev.Instance }) &&
			!(e.observed && e.running && e.startedAt.After(s.started))
		e.ooms.counters(ev)
		e.pressure.reading(ev)
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
	}
	return history
}

// historyKept bounds the victims of the log's buffer a container keeps
// until a runtime tells when it ran.
const historyKept = 16

// history counts a victim from the kernel log's buffer (a kill before the
// exporter started) in e, and reports whether it counted. Where the
// container ran then is the runtime's to say: a kill since its current run
// began is in the cgroup instance live now (whose counter counts it too),
// an earlier one in a run whose cgroup is gone (a restart by its policy
// makes a new one each time): counted as before the kernel's first count.
// With s.mu held.
func (s *Store) history(e *entry, v OOMVictim) bool {
	if !e.observed {
		if e.ooms.victim(v.Instance, v.At, false, groupReport(v)) {
			return true // in a cgroup the reader found, which counts it
		}
		// Its runtime has not told when the container ran: kept until it does.
		if tr := e.kills(); len(tr.history) < historyKept {
			tr.history = append(tr.history, v)
		}
		return false
	}
	thisRun := !v.At.Before(e.startedAt.Add(-historySlack))
	switch {
	case !e.createdAt.IsZero() && v.At.Before(e.createdAt.Add(-historySlack)):
		return false // before the container was made: not its kill
	case e.createdAt.IsZero() && !thisRun && e.Restarts == 0:
		return false // before its only run
	}
	if in := e.ooms.liveInstance(); in != 0 && thisRun {
		return e.ooms.victim(in, v.At, false, groupReport(v))
	}
	e.ooms.addPrior(stamp{at: v.At, victim: true})
	return true
}

// historySlack is how far the kernel log's time of a kill from before the
// exporter started may be off the runtime's time of a start: both are the
// same host's clock, the log's turned into wall time. A restart comes
// 100 ms or more after the exit before it (Docker's restart policy, the
// kubelet's back-off), so a kill is told from the next run's by its time.
const historySlack = 50 * time.Millisecond

// placeHistory counts the victims from the log's buffer that e kept until
// its runtime told when it ran. With s.mu held.
func (s *Store) placeHistory(e *entry, key string) {
	if e.trail == nil || len(e.trail.history) == 0 || !e.observed {
		return
	}
	kept := e.trail.history
	e.trail.history = nil
	for _, v := range kept {
		s.countVictim(e, key, v)
	}
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

// kernelKey is the key of a container only the kernel knows: its cgroup's
// path itself, which begins with "/" where a runtime's key (Key) begins with
// the runtime's name. It is the kernel reader's own string, not a copy:
// 10,000 such containers keep 1.5 MB less (docs/performance.md).
// A path not from the root (none the reader gives) keeps the prefix of old.
func kernelKey(path string) string {
	if strings.HasPrefix(path, "/") {
		return path
	}
	return "cgroup:" + path
}

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
			src.relabel(k)
			s.moveRising(old, k)
			return
		}
		if !dst.ooms.kernelSeen() {
			dst.ooms.instances, dst.ooms.settled, dst.ooms.settledGroup, dst.ooms.hasGroup =
				src.ooms.instances, src.ooms.settled, src.ooms.settledGroup, src.ooms.hasGroup
			dst.pressure = src.pressure
			for p, n := range src.ProcessKills {
				dst.ProcessKills = countProcess(dst.ProcessKills, p, n, MaxProcessNames)
			}
			dst.LastOOM = latest(dst.LastOOM, src.LastOOM)
			// The records of its kills go with them.
			dst.explained += src.explained
			if from := src.trail; from != nil {
				tr := dst.kills()
				if tr.riseAt.IsZero() {
					tr.riseAt, tr.riseFrom = from.riseAt, from.riseFrom
				}
				tr.history = append(tr.history, from.history...)
				tr.unfilled = append(tr.unfilled, from.unfilled...)
			}
			for _, r := range src.recorded() {
				dst.keep(r)
			}
			dst.lastKill = latest(dst.lastKill, src.lastKill)
			dst.lastEnding = latest(dst.lastEnding, src.lastEnding)
			dst.KillsByScope = addCounts(dst.KillsByScope, src.KillsByScope)
			dst.KillsByOutcome = addCounts(dst.KillsByOutcome, src.KillsByOutcome)
			dst.relabel(k)
			if src.HasLastOOMUsage {
				dst.LastOOMUsage, dst.LastOOMLimit, dst.HasLastOOMUsage = src.LastOOMUsage, src.LastOOMLimit, true
			}
		}
		s.moveRising(old, k)
		s.forget(old)
		return
	}
}

// moveRising moves the mark of kills still to record from the key from to to.
func (s *Store) moveRising(from, to string) {
	if _, ok := s.rising[from]; ok {
		delete(s.rising, from)
		s.rising[to] = struct{}{}
	}
}

// addCounts adds the counts of b to a, and returns a (made if nil).
func addCounts(a, b map[string]uint64) map[string]uint64 {
	for name, n := range b {
		if a == nil {
			a = map[string]uint64{}
		}
		a[name] += n
	}
	return a
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
