package store

import (
	"slices"
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
		s.noteMainKill(e, v)
	}
	e.history = nil
	return nil
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
			dst.lastUnknownKill = latest(dst.lastUnknownKill, src.lastUnknownKill)
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
