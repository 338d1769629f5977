package store

import (
	"strings"
	"time"
)

// The record of each OOM kill: what the kernel log says of it, in the
// container it happened in. The counts (container_ooms_total) stay decided
// by the rule of oom.go; a record is made for every kill they count, and
// tells what is known of it. Where the kernel log named the victim, all it
// said; where only a counter or a runtime counted the kill, its time and
// container, and that the rest is not known.

// Scopes: whose memory limit a kill was for.
const (
	ScopeContainer = "container" // the container's own limit (or a limit inside it)
	ScopePod       = "pod"       // the kubelet's pod cgroup: the pod's limit
	ScopeAncestor  = "ancestor"  // another cgroup above the container (a QoS class, a slice, Docker's --cgroup-parent)
	ScopeNode      = "node"      // no limit: the node ran out of memory (a global OOM)
)

// Where a record comes from.
const (
	FromKernelLog = "kernel log"     // the kernel log described the kill
	FromCounter   = "cgroup counter" // only the cgroup's counter counted it
	FromRuntime   = "runtime"        // only the runtime reported it
)

// Process is a process the kernel log names.
type Process struct {
	PID  int
	Name string
}

// VictimMemory is what the victim held when it was killed, in bytes.
type VictimMemory struct {
	AnonRSS, FileRSS, ShmemRSS uint64
}

// KillDetails is what the kernel log says of a kill beyond its victim's name.
// A nil pointer or an empty string is not known.
type KillDetails struct {
	PID         int // the victim's; 0 if not known
	UID         *int
	Memory      *VictimMemory
	OOMScoreAdj *int
	// MainProcess says whether the victim was its container's main process
	// (pid 1 of the container's pid namespace), whose death ends the
	// container, or another process, the container living on.
	MainProcess *bool
	// Trigger is the process whose allocation invoked the OOM killer.
	Trigger *Process
	// Scope is whose limit was hit (Scope*); LimitCgroup that cgroup, with
	// its memory usage and limit in bytes when HasUsage.
	Scope        string
	LimitCgroup  string
	Usage, Limit uint64
	HasUsage     bool
	// Group is the cgroup of a memory.oom.group kill: every process in it
	// was killed, this one among them. ReportSeq is the kernel log record
	// that began the report: the victims of one kill share it.
	Group     string
	ReportSeq uint64
}

// Kill is the record of one OOM kill.
type Kill struct {
	Seq  uint64    // the record's number: records are numbered as they are made
	Time time.Time // the kernel's time of the kill; for a kill the kernel log did not describe, when the exporter learned of it
	// Container is the container's labels; zero for a kill in no container
	// (Host) or in a container not known (Unplaced).
	Container Meta
	Host      bool
	// Unplaced: the kernel log named the victim but not its cgroup (its
	// report was rate-limited), and no container's main process had its pid.
	Unplaced bool
	Process  string // the victim's name; "" if not known
	From     string // FromKernelLog, FromCounter or FromRuntime
	Details  KillDetails
}

// DefaultKillsKept is how many kill records the store keeps by default.
const DefaultKillsKept = 1000

// announceAfter is how long a kill that only a counter or a runtime counted
// waits for the kernel log to describe it before it is announced as it is:
// the counter of a cgroup is often read before its victim's record.
const announceAfter = 2 * time.Second

// killLog keeps the newest records, in the order they were made.
type killLog struct {
	keep    int
	records []*Kill // a ring: oldest at start
	start   int
	seq     uint64
	// pending are records made from a counter or a runtime's report, not
	// yet announced: the kernel log may still describe them.
	pending []*Kill
}

func (l *killLog) add(k *Kill) {
	l.seq++
	k.Seq = l.seq
	if l.keep <= 0 {
		return
	}
	if len(l.records) < l.keep {
		l.records = append(l.records, k)
		return
	}
	l.records[l.start] = k
	l.start = (l.start + 1) % len(l.records)
}

// newest returns up to n records that match, newest first.
func (l *killLog) newest(n int, match func(*Kill) bool) []Kill {
	var out []Kill
	for i := len(l.records) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		k := l.records[(l.start+i)%len(l.records)]
		if match == nil || match(k) {
			out = append(out, *k)
		}
	}
	return out
}

// maxUnfilled bounds the records of one container that wait for the kernel
// log's description.
const maxUnfilled = 16

// recordKills makes the records of what an event made the entry's count
// rise by, and fills those the kernel log now describes. It returns the
// records to announce now. With s.mu held.
//
// Kills from before the exporter started (history) are not announced: they
// were, by the exporter that ran then. Their count is taken without records,
// but for those the kernel log's buffer still describes.
func (s *Store) recordKills(e *entry, ev Event, counted, history bool) []*Kill {
	total := e.ooms.total()
	var out []*Kill
	if v, ok := ev.(OOMVictim); ok && counted && history {
		if total > e.recorded {
			e.recorded++
		}
		k := &Kill{Time: v.At, Container: e.Meta, Process: v.Process, From: FromKernelLog, Details: v.Details}
		s.kills.add(k)
		s.noteMainKill(e, v)
		return nil
	}
	if history {
		e.recorded = max(e.recorded, total)
		return nil
	}
	if v, ok := ev.(OOMVictim); ok && counted {
		if v.Details.MainProcess == nil && v.Details.PID > 0 {
			// The victim was gone before the reader could ask whether it was
			// pid 1 of its namespace: the main pid its runtime gave tells,
			// that of the run that ended if the runtime told of its exit
			// first (a group kill ends the container at once).
			switch {
			case e.pid > 0:
				main := v.Details.PID == e.pid
				v.Details.MainProcess = &main
			case e.exitedPid > 0 && !e.running && !v.At.After(e.finished):
				main := v.Details.PID == e.exitedPid
				v.Details.MainProcess = &main
			}
		}
		if total > e.recorded {
			k := &Kill{Time: v.At, Container: e.Meta, Process: v.Process, From: FromKernelLog, Details: v.Details}
			s.kills.add(k)
			e.recorded++
			e.described(v.Details)
			out = append(out, k)
		} else if k := e.takeUnfilled(v.At); k != nil {
			// The counter counted it first: the same kill, now described.
			k.Time, k.Container, k.Process, k.From, k.Details = v.At, e.Meta, v.Process, FromKernelLog, v.Details
			e.described(v.Details)
			if s.kills.takePending(k) {
				out = append(out, k)
			}
		}
		s.noteMainKill(e, v)
	}
	from := FromCounter
	if _, ok := ev.(KernelOOMCount); !ok {
		from = FromRuntime
	}
	at := time.Now()
	switch ev := ev.(type) {
	case KernelOOMCount:
		at = ev.At
	case OOMKilled:
		at = ev.At
	}
	for ; e.recorded < total; e.recorded++ {
		k := &Kill{Time: at, Container: e.Meta, From: from}
		s.kills.add(k)
		s.kills.pending = append(s.kills.pending, k)
		e.unfilled = append(e.unfilled, k)
		if len(e.unfilled) > maxUnfilled {
			e.unfilled = e.unfilled[1:]
		}
	}
	return out
}

// described counts a kill the kernel log described by its scope, and keeps
// the usage and limit of the cgroup whose limit it hit.
func (e *entry) described(d KillDetails) {
	if d.Scope != "" {
		if e.byScope == nil {
			e.byScope = map[string]uint64{}
		}
		e.byScope[d.Scope]++
	}
	if d.HasUsage {
		e.LastOOMUsage, e.LastOOMLimit, e.HasLastOOMUsage = d.Usage, d.Limit, true
	}
}

// takeUnfilled removes and returns the record waiting for the description
// of a kill at t: the oldest one the exporter learned of at or after t (a
// counter is read after the kill), else the newest.
func (e *entry) takeUnfilled(t time.Time) *Kill {
	if len(e.unfilled) == 0 {
		return nil
	}
	i := len(e.unfilled) - 1
	for j, k := range e.unfilled {
		if !k.Time.Before(t.Add(-100 * time.Millisecond)) {
			i = j
			break
		}
	}
	k := e.unfilled[i]
	e.unfilled = append(e.unfilled[:i], e.unfilled[i+1:]...)
	return k
}

// takePending reports whether k was still to be announced, and no longer is.
func (l *killLog) takePending(k *Kill) bool {
	for i, p := range l.pending {
		if p == k {
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			return true
		}
	}
	return false
}

// noteMainKill remembers a kill of the entry's main process, which decides
// the reason of the exit it causes; an exit already applied is that one's
// if the kill came in the run it ended.
func (s *Store) noteMainKill(e *entry, v OOMVictim) {
	at, d := v.At, v.Details
	// A group kill of the container's cgroup, or of one above it, kills
	// every process in it: the main process too, whichever victim this is.
	whole := d.Group != "" && v.Cgroup.Path != "" && (v.Cgroup.Path == d.Group || strings.HasPrefix(v.Cgroup.Path, d.Group+"/"))
	if d.MainProcess == nil && !whole {
		// Whether the victim was the main process is not known (it was
		// gone before anyone could look, and no runtime gave the main
		// pid): an exit by SIGKILL in its run may have been this kill.
		e.lastUnknownKill = latest(e.lastUnknownKill, at)
		if e.Exited && e.ExitCode == 137 && e.ExitReason == ExitSignal && !e.finished.Add(exitClockSlack).Before(at) && !at.Before(e.startedAt) {
			e.ExitReason = ""
		}
		return
	}
	if !whole && !*d.MainProcess {
		return
	}
	e.lastMainKill = latest(e.lastMainKill, at)
	if e.Exited && e.ExitCode == 137 && !e.finished.Add(exitClockSlack).Before(at) && !at.Before(e.startedAt) {
		e.ExitReason = ExitOOMKilled
	}
}

// exitClockSlack is how much later than the exit a kill of its run may be
// stamped: a kill comes before the exit it causes, but its time is the
// kernel log's, turned into wall time, and the exit's is the runtime's
// clock; under load or emulation they differ by tens of milliseconds (a
// group kill's main process, killed last, was stamped after its exit).
const exitClockSlack = time.Second

// Exit reasons: why a container's main process last exited.
const (
	ExitOOMKilled = "oom_killed" // the OOM killer killed it
	ExitSignal    = "signal"     // another signal ended it (a stop's SIGKILL or SIGTERM)
	ExitExited    = "exited"     // it exited with its own code
)

// exitReason decides why the main process exited with code at 'at', from
// what is known exactly: a kill of the main process in the run that ended
// (the kernel's victim against the container's main pid), and the code.
// Exit codes above 128 are 128 plus the signal that ended the process.
func (e *entry) exitReason(code int, at time.Time) string {
	switch {
	case code == 137 && !e.lastMainKill.IsZero() && !e.lastMainKill.Before(e.startedAt) && !at.Add(exitClockSlack).Before(e.lastMainKill):
		return ExitOOMKilled
	case code == 137 && !e.lastUnknownKill.IsZero() && !e.lastUnknownKill.Before(e.startedAt) && !at.Add(exitClockSlack).Before(e.lastUnknownKill):
		return "" // an OOM kill of a process not known to be the main one, or not: not known
	case code > 128 && code <= 128+64:
		return ExitSignal
	}
	return ExitExited
}

// SetKillsKept sets how many kill records are kept (0: none).
func (s *Store) SetKillsKept(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kills.keep = max(n, 0)
	s.kills.records, s.kills.start = nil, 0
}

// Kills returns up to n kill records (0: all kept) for which match returns
// true (nil: all), newest first.
func (s *Store) Kills(n int, match func(*Kill) bool) []Kill {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kills.newest(n, match)
}

// OnKill registers f to be called, outside the store's lock, once for each
// kill: when the kernel log describes it, or, for one only a counter or a
// runtime counted, once the kernel log has had a moment to describe it
// (AnnounceKills).
func (s *Store) OnKill(f func(Kill)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onKill = f
}

// AnnounceKills announces the kills that only a counter or a runtime
// counted, and that the kernel log has not described by now. Call it every
// second or so.
func (s *Store) AnnounceKills(now time.Time) {
	s.mu.Lock()
	var out []Kill
	keep := s.kills.pending[:0]
	for _, k := range s.kills.pending {
		if now.Sub(k.Time) >= announceAfter {
			out = append(out, *k)
		} else {
			keep = append(keep, k)
		}
	}
	s.kills.pending = keep
	f := s.onKill
	s.mu.Unlock()
	if f != nil {
		for _, k := range out {
			f(k)
		}
	}
}
