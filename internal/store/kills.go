package store

import (
	"slices"
	"strings"
	"time"
)

// The record of each OOM kill: what the kernel log says of it, in the
// container it happened in. The counts (container_ooms_total) stay decided
// by the rule of oom.go; every kill they count is in a record, which tells
// what is known of it. One record holds one kernel report's victims in one
// container: the chosen victim, and the members of a memory.oom.group kill
// with it. Where only a counter or a runtime counted a kill, the record has
// its time and container, and says that the rest is not known.

// Scopes: whose memory limit a kill was for.
const (
	ScopeContainer = "container" // the container's own limit (or a limit inside it)
	ScopePod       = "pod"       // the kubelet's pod cgroup: the pod's limit
	ScopeAncestor  = "ancestor"  // another cgroup above the container (a QoS class, a slice, Docker's --cgroup-parent)
	ScopeNode      = "node"      // no limit: the node ran out of memory (a global OOM)
	// ScopeCgroup: the limit of a cgroup that is no container's, for a
	// victim in no container (a systemd service's MemoryMax, a job runner's
	// cgroup, a runtime the exporter does not know).
	ScopeCgroup = "cgroup"
)

// Where a killed process was (Kill.Place).
const (
	PlaceContainer = "container" // in a container
	PlaceHost      = "host"      // in no container, when the node ran out of memory
	PlaceCgroup    = "cgroup"    // in no container, in a cgroup with a limit of its own (Kill.Cgroup)
	PlaceUnknown   = "unplaced"  // in a cgroup not known: its report was cut short, the process gone
)

// Where a record comes from.
const (
	FromKernelLog = "kernel log"     // the kernel log described the kill
	FromCounter   = "cgroup counter" // only the cgroup's counter counted it
	FromRuntime   = "runtime"        // only the runtime reported it
)

// Outcomes: what became of the container a kill was in.
const (
	// OutcomeEnded: the kill ended the container. Its main process was the
	// victim, a memory.oom.group kill took every process in it, or it
	// exited by SIGKILL (137) right after the kill, as a wrapper such as
	// tini or a shell does when its child is killed.
	OutcomeEnded = "ended"
	// OutcomeLivedOn: the container ran on after the kill.
	OutcomeLivedOn = "lived_on"
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
	// MainProcess says whether the victim was its container's main process:
	// the pid its runtime gave for the run, else (where the runtime gave
	// none) pid 1 of the victim's pid namespace.
	MainProcess *bool
	// Trigger is the process whose allocation invoked the OOM killer.
	Trigger *Process
	// Scope is whose limit was hit (Scope*); LimitCgroup that cgroup, with
	// its memory usage and limit in bytes when HasUsage.
	Scope        string
	LimitCgroup  string
	Usage, Limit uint64
	HasUsage     bool
	// Held is what the cgroup whose limit was hit held (the report's
	// memory.stat); Tasks the largest tasks of the report's dump by RSS (at
	// most MaxTasks), TaskCount how many it listed. nil, empty, 0 where the
	// report was rate-limited.
	Held      *Held
	Tasks     []Task
	TaskCount int
	// Group is the cgroup of a memory.oom.group kill: every process in it
	// was killed, this one among them.
	Group string
	// ReportSeq names the kernel's report of the kill (the sequence number
	// of its first record): the victims of one kill share it. 0 for a kill
	// the kernel log did not describe.
	ReportSeq uint64
}

// Member is a process killed by the report of a record, in the container
// of the record: a member of a memory.oom.group kill.
type Member struct {
	PID    int
	Name   string
	Memory *VictimMemory // nil if not known
}

// Kill is the record of one OOM kill in one container: one kernel report's
// victims there.
type Kill struct {
	Seq  uint64    // the record's number: records are numbered as they are made
	Time time.Time // the kernel's time of the kill; for a kill the kernel log did not describe, when the exporter learned of it
	// Container is the container's labels; zero for a kill in no container
	// (Host) or in a container not known (Unplaced).
	Container Meta
	Host      bool
	// Cgroup is the victim's cgroup, for a kill in no container.
	Cgroup string
	// Unplaced: the kernel log named the victim, but neither the kernel
	// nor /proc, a counter or a runtime's main pid said which cgroup it
	// was in.
	Unplaced bool
	Process  string // the chosen victim's name; "" if not known
	From     string // FromKernelLog, FromCounter or FromRuntime
	Details  KillDetails
	// Members are the processes of a memory.oom.group kill in this
	// container, in the order the kernel killed them, each once (the chosen
	// victim, which the kernel kills and logs again as a member, too).
	// Empty for the kill of one process.
	Members []Member
	// Outcome is what became of the container (Outcome*); "" if not known:
	// no container, or neither the kernel nor the runtime told.
	Outcome string
	// Before is what the container's cgroup counted of memory pressure
	// in the minute before the kill (pressure.go); nil if not known.
	Before *Before

	// What the store needs until the record is announced.
	key        string    // the entry the record is of; "" for a kill in no container
	made       time.Time // the time of the event that made it: what the wait for the rest is measured from
	reportOpen bool      // the kernel log's report may still name members
	decided    bool      // Outcome is final
	counted    uint64    // kills of the container's count the record holds
	announced  bool
	dropped    bool // merged into another record: no longer kept
}

// DefaultKillsKept is how many kill records the store keeps by default.
const DefaultKillsKept = 1000

// announceAfter bounds how long a record waits for what is still to come
// before it is announced as it is: the kernel log's description of a kill a
// counter or a runtime counted first (a counter is often read before its
// victim's record), the rest of its report (the members of a group kill),
// and its container's labels (a runtime inspects a container it sees
// first in its events: a crash loop at start is killed before that).
const announceAfter = 2 * time.Second

// outcomeWait bounds how long a record waits for its outcome: whether the
// container exits right after the kill (exitWindow) or lives on. Decided
// at once where the victim was the main process or a group kill took the
// container; else at the container's next exit, or after outcomeWait.
const outcomeWait = 5 * time.Second

// exitWindow is how long before an exit a kill may be that exit's cause:
// a main process or a wrapper (tini, dumb-init, a shell) dies or exits
// within milliseconds of the kill; an exit by SIGKILL much later (a stop,
// an hour on) is not the kill's. Both times are the kernel's and the
// runtime's own stamps, not when the exporter learned of them.
const exitWindow = 5 * time.Second

// exitClockSlack is how much later than the exit a kill of its run may be
// stamped: a kill comes before the exit it causes, but its time is the
// kernel log's, turned into wall time, and the exit's is the runtime's
// clock; under load or emulation they differ by tens of milliseconds (a
// group kill's main process, killed last, was stamped after its exit).
const exitClockSlack = time.Second

// killLog keeps the newest records, in the order they were made.
type killLog struct {
	keep    int
	records []*Kill // a ring: oldest at start
	start   int
	seq     uint64
	// pending are the records not yet announced.
	pending []*Kill
	// reports are the newest records of kernel reports, which the members
	// of a group kill join.
	reports []*Kill
}

// maxReportsOpen bounds the records that members can still join: the
// members of one kill come right after its chosen victim.
const maxReportsOpen = 64

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

// Place says where the killed process was (Place*): in a container, or in
// none when the node ran out of memory, in a cgroup of no container with a
// limit of its own, or in a cgroup not known.
func (k *Kill) Place() string {
	switch {
	case k.Unplaced:
		return PlaceUnknown
	case !k.Host:
		return PlaceContainer
	case k.Details.Scope == ScopeNode || k.Cgroup == "/":
		return PlaceHost
	}
	return PlaceCgroup
}

// report returns the record of the report seq in the place key (an entry's
// key, or "host"/"unplaced"), nil if none.
func (l *killLog) report(seq uint64, key string, host, unplaced bool) *Kill {
	if seq == 0 {
		return nil
	}
	for i := len(l.reports) - 1; i >= 0; i-- {
		k := l.reports[i]
		if k.Details.ReportSeq == seq && k.key == key && k.Host == host && k.Unplaced == unplaced {
			return k
		}
	}
	return nil
}

func (l *killLog) addReport(k *Kill) {
	l.reports = append(l.reports, k)
	if len(l.reports) > maxReportsOpen {
		l.reports = l.reports[1:]
	}
}

// drop takes a record out: its kill is another record's. A record
// announced already stays.
func (l *killLog) drop(k *Kill) {
	if k.announced {
		return
	}
	k.dropped, k.announced = true, true
	for i, p := range l.pending {
		if p == k {
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			break
		}
	}
}

// newest returns up to n records that match, newest first.
func (l *killLog) newest(n int, match func(*Kill) bool) []Kill {
	var out []Kill
	for i := len(l.records) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		k := l.records[(l.start+i)%len(l.records)]
		if k.dropped {
			continue
		}
		if match == nil || match(k) {
			out = append(out, k.copy())
		}
	}
	return out
}

// copy is the record as handed out: its members are its own.
func (k *Kill) copy() Kill {
	c := *k
	c.Members = append([]Member(nil), k.Members...)
	return c
}

// maxKept bounds the records an entry keeps at hand: those a late victim
// may fill, an exit decide, or its labels name anew.
const maxKept = 16

// killTrail is what an entry keeps of its kills' records beyond their
// count: made at its first kill, so that of 10,000 containers those that
// never had one keep 112 bytes less each (docs/performance.md).
type killTrail struct {
	// riseAt is when the count last rose beyond what records explain, and
	// riseFrom what told.
	riseAt   time.Time
	riseFrom string
	records  []*Kill     // the newest records, to fill, decide and relabel
	unfilled []*Kill     // records of kills the kernel log has not described yet
	history  []OOMVictim // victims from the log's buffer, until the runtime says when the container ran
}

// kills is the entry's trail, made at its first use: only where a kill
// is to be written down.
func (e *entry) kills() *killTrail {
	if e.trail == nil {
		e.trail = &killTrail{}
	}
	return e.trail
}

// recorded is the entry's records; none before its first kill.
func (e *entry) recorded() []*Kill {
	if e.trail == nil {
		return nil
	}
	return e.trail.records
}

// keep remembers a record of the entry.
func (e *entry) keep(k *Kill) {
	tr := e.kills()
	tr.records = append(tr.records, k)
	if len(tr.records) > maxKept {
		tr.records = tr.records[1:]
	}
}

// victim counts a victim the kernel reader placed, and makes or joins the
// record of its report. e is its container's entry, nil for a kill in no
// container or in one not known (v.Host tells which). It returns the
// records that are complete now. With s.mu held: the one place that counts
// a kernel-log victim.
func (s *Store) victim(e *entry, key string, v OOMVictim) []*Kill {
	if !s.newRecord(v.Seq) {
		return nil // read again after the log was reopened
	}
	d := v.Details
	if e == nil {
		if !v.Live {
			return nil // history: announced by the exporter that ran then
		}
		k := s.kills.report(d.ReportSeq, "", v.Host, !v.Host)
		if k != nil && k.Cgroup != v.HostCgroup {
			k = nil // one report, victims in two cgroups of no container
		}
		if k == nil {
			k = &Kill{Time: v.At, Host: v.Host, Cgroup: v.HostCgroup, Unplaced: !v.Host, Process: v.Process, From: FromKernelLog,
				Details: d, made: v.At, reportOpen: true, decided: true}
			s.kills.add(k)
			s.kills.addReport(k)
			s.kills.pending = append(s.kills.pending, k)
		}
		k.join(v)
		switch k.Place() {
		case PlaceHost:
			s.hostKills = countProcess(s.hostKills, v.Process, 1, MaxHostProcessNames)
		case PlaceCgroup:
			s.cgroupKills = countProcess(s.cgroupKills, v.HostCgroup, 1, MaxHostCgroups)
		}
		return nil
	}
	return s.countVictim(e, key, v)
}

// countVictim counts a victim in its container's entry e (key), and makes
// or joins the record of its report. It returns the records complete now.
// With s.mu held.
func (s *Store) countVictim(e *entry, key string, v OOMVictim) []*Kill {
	d := v.Details
	// The main process is the pid its runtime gave for the run; only where
	// it gave none, pid 1 of the victim's pid namespace (a shared pid
	// namespace, tini and nested namespaces all have another pid 1).
	d.MainProcess = e.isMain(d.PID, v.At, v.NSInit)
	v.Details = d

	before := e.ooms.total()
	counted := false
	if v.Live {
		counted = e.ooms.victim(v.Instance, v.At, true, groupReport(v))
	} else {
		counted = s.history(e, v)
	}
	if counted {
		e.ProcessKills = countProcess(e.ProcessKills, v.Process, 1, MaxProcessNames)
		e.LastOOM = latest(e.LastOOM, v.At)
		if !v.Live {
			// A kill from before the exporter started, which the counter's
			// first reading holds: its scope is counted back as its process
			// is, whatever came first.
			e.scoped(d.Scope, 1)
		}
	}
	live := func(n uint64) uint64 { // the kills by scope a live victim adds
		if v.Live {
			return n
		}
		return 0
	}
	if !e.observed && !e.ooms.live() && e.removedAt.IsZero() {
		// Known only from the kernel log, its cgroup gone: kept for the
		// retention like a removed container.
		e.removedAt, e.kernelRemoved = v.At, true
	}
	if !counted {
		return nil
	}
	rose := e.ooms.total() > before
	e.lastKill = latest(e.lastKill, v.At)

	k := s.kills.report(d.ReportSeq, key, false, false)
	if k == nil && !rose && e.explained >= e.ooms.total() {
		if f := e.takeUnfilled(v.At); f != nil {
			// The counter counted it first and its record was made: the
			// same kill, now described.
			k = f
			k.Time, k.Container, k.From, k.Details, k.Process = v.At, e.Meta, FromKernelLog, d, v.Process
			k.made, k.reportOpen = latest(k.made, v.At), !k.announced
			s.kills.addReport(k)
			e.scoped(d.Scope, live(f.counted))
		}
	}
	if k == nil {
		k = &Kill{Time: v.At, Container: e.Meta, Process: v.Process, From: FromKernelLog, Details: d,
			key: key, made: v.At, reportOpen: v.Live, announced: !v.Live, decided: !v.Live}
		s.kills.add(k)
		s.kills.addReport(k)
		e.keep(k)
		if v.Live {
			s.kills.pending = append(s.kills.pending, k)
		}
	}
	switch {
	case e.explained < e.ooms.total():
		e.explained++
		k.count(e, 1)
		e.scoped(d.Scope, live(1))
	case !rose:
		// A member of a group kill whose counter record was made before
		// the log described it: the member's kill is this record's.
		if f := e.takeUnfilled(v.At); f != nil && f != k {
			k.count(e, f.counted)
			e.scoped(d.Scope, live(f.counted))
			s.kills.drop(f)
		}
	}
	k.join(v)
	s.described(e, k, v)
	return s.readyNow(k)
}

// scoped counts n kills the kernel log described by whose limit was hit,
// as container_ooms_total counts them: per kill.
func (e *entry) scoped(scope string, n uint64) {
	if scope != "" && n > 0 {
		e.KillsByScope = addCounts(e.KillsByScope, map[string]uint64{scope: n})
	}
}

// count adds n of the entry's kills to the record, and to the kills by
// outcome if it is decided.
func (k *Kill) count(e *entry, n uint64) {
	k.counted += n
	if k.decided && k.Outcome != "" {
		if e.KillsByOutcome == nil {
			e.KillsByOutcome = map[string]uint64{}
		}
		e.KillsByOutcome[k.Outcome] += n
	}
}

// groupReport is the report of a group kill of the victim's container's own
// cgroup, whose counter counts it (0 for any other kill): the kernel counts
// a group kill in the group's cgroup and those above it.
func groupReport(v OOMVictim) uint64 {
	if d := v.Details; d.Group != "" && d.Group == v.Cgroup.Path {
		return d.ReportSeq
	}
	return 0
}

// join adds the victim to the record: the chosen victim once, and the
// members of a group kill each once.
func (k *Kill) join(v OOMVictim) {
	d := v.Details
	if d.Group != "" && k.Details.Group == "" {
		k.Details.Group = d.Group
	}
	if d.Group == "" && len(k.Members) == 0 {
		return // the chosen victim of a kill of one process: the record says it all
	}
	if len(k.Members) == 0 && k.Details.PID != 0 {
		// The chosen victim, killed first, is the group's first member.
		k.Members = append(k.Members, Member{PID: k.Details.PID, Name: k.Process, Memory: k.Details.Memory})
	}
	for _, m := range k.Members {
		if m.PID == d.PID && d.PID != 0 {
			return
		}
	}
	if len(k.Members) < maxMembers {
		k.Members = append(k.Members, Member{PID: d.PID, Name: v.Process, Memory: d.Memory})
	}
}

// maxMembers bounds the members a record lists: a tenant may run thousands
// of processes. All count; the first are named.
const maxMembers = 64

// described takes what the kernel log said of a kill in e: its scope and
// usage, and whether the kill ended the container.
func (s *Store) described(e *entry, k *Kill, v OOMVictim) {
	d := v.Details
	if d.HasUsage {
		e.LastOOMUsage, e.LastOOMLimit, e.HasLastOOMUsage = d.Usage, d.Limit, true
	}
	switch {
	case ended(v, d):
		decide(e, k, OutcomeEnded)
		e.lastEnding = latest(e.lastEnding, v.At)
	case !e.finished.IsZero() && !e.finished.Before(v.At.Add(-exitClockSlack)) && !v.At.Before(e.exitedStart.Add(-exitClockSlack)):
		// Described after the exit of its run was applied.
		e.exitedRecord(k)
	}
	e.exitCause(v.At)
}

// ended reports whether the kernel's account of a victim says that its
// container ended: its main process was killed, or a group kill of the
// container's cgroup, or of one above it, killed every process in it.
func ended(v OOMVictim, d KillDetails) bool {
	whole := d.Group != "" && v.Cgroup.Path != "" && (v.Cgroup.Path == d.Group || strings.HasPrefix(v.Cgroup.Path, d.Group+"/"))
	return whole || (d.MainProcess != nil && *d.MainProcess)
}

// isMain says whether pid was the container's main process at t: the pid
// its runtime gave for the run going on, or for the run that ended just
// now (the runtime may tell of the exit before the kernel log's record is
// read); else what the kernel said of its pid namespace (nsInit).
func (e *entry) isMain(pid int, t time.Time, nsInit *bool) *bool {
	var main bool
	switch {
	case pid <= 0:
		return nsInit
	case e.running && e.pid > 0 && !t.Before(e.startedAt.Add(-exitClockSlack)):
		main = pid == e.pid
	case e.exitedPid > 0 && !t.After(e.finished.Add(exitClockSlack)) && !t.Before(e.exitedStart.Add(-exitClockSlack)):
		main = pid == e.exitedPid
	default:
		return nsInit
	}
	return &main
}

// decide sets the outcome of a record and counts its kills by it; e is
// its container's entry, nil if none.
func decide(e *entry, k *Kill, outcome string) {
	if k.decided {
		return
	}
	k.decided, k.Outcome = true, outcome
	if e != nil && outcome != "" && k.counted > 0 {
		if e.KillsByOutcome == nil {
			e.KillsByOutcome = map[string]uint64{}
		}
		e.KillsByOutcome[outcome] += k.counted
	}
}

// exited decides the outcome of the records of the run an exit at x with
// code ended: a kill within exitWindow before an exit by SIGKILL ended it,
// any other lived on past it.
func (e *entry) exited(x time.Time, code int) {
	for _, k := range e.recorded() {
		if k.decided || k.Time.After(x.Add(exitClockSlack)) {
			continue // a later run's
		}
		if code == 137 && !k.Time.Before(x.Add(-exitWindow)) {
			decide(e, k, OutcomeEnded)
		} else {
			decide(e, k, OutcomeLivedOn)
		}
	}
}

// risen notes that the entry's count rose without a victim (a counter or a
// runtime's report, from) at t: a record is made for it unless the kernel
// log describes it within announceAfter.
func (s *Store) risen(e *entry, key string, t time.Time, from string, history bool) {
	if history {
		e.explained = max(e.explained, e.ooms.total())
		return
	}
	if e.explained >= e.ooms.total() {
		return
	}
	e.lastKill = latest(e.lastKill, t)
	if tr := e.kills(); tr.riseAt.IsZero() {
		tr.riseAt, tr.riseFrom = t, from
	}
	if s.rising == nil {
		s.rising = map[string]struct{}{}
	}
	s.rising[key] = struct{}{}
}

// recordRises makes the records of the kills of e that only a counter or
// a runtime counted, once the kernel log has had announceAfter to describe
// them. With s.mu held.
func (s *Store) recordRises(e *entry, key string, now time.Time) {
	tr := e.kills() // rising: risen made it
	if e.explained >= e.ooms.total() {
		tr.riseAt = time.Time{}
		delete(s.rising, key)
		return
	}
	if now.Sub(tr.riseAt) < announceAfter {
		return
	}
	for ; e.explained < e.ooms.total(); e.explained++ {
		k := &Kill{Time: tr.riseAt, Container: e.Meta, From: tr.riseFrom, key: key, made: tr.riseAt, counted: 1}
		s.kills.add(k)
		s.kills.pending = append(s.kills.pending, k)
		e.keep(k)
		tr.unfilled = append(tr.unfilled, k)
		if len(tr.unfilled) > maxKept {
			tr.unfilled = tr.unfilled[1:]
		}
		if !e.finished.IsZero() && !e.running && !k.Time.Before(e.startedAt) && !e.finished.Before(k.Time.Add(-exitWindow)) {
			// Counted after the exit it caused: read once the container ended.
			e.exitedRecord(k)
		}
	}
	tr.riseAt = time.Time{}
	delete(s.rising, key)
}

// exitedRecord decides the outcome of a record made after the exit of its
// run.
func (e *entry) exitedRecord(k *Kill) {
	if e.Exited && e.ExitCode == 137 && !e.finished.Before(k.Time.Add(-exitWindow)) {
		decide(e, k, OutcomeEnded)
		return
	}
	decide(e, k, OutcomeLivedOn)
}

// takeUnfilled removes and returns the record waiting for the description
// of a kill at t: the oldest one the exporter learned of at or after t (a
// counter is read after the kill), else the newest.
func (e *entry) takeUnfilled(t time.Time) *Kill {
	tr := e.trail
	if tr == nil || len(tr.unfilled) == 0 {
		return nil
	}
	i := len(tr.unfilled) - 1
	for j, k := range tr.unfilled {
		if !k.Time.Before(t.Add(-100 * time.Millisecond)) {
			i = j
			break
		}
	}
	k := tr.unfilled[i]
	tr.unfilled = append(tr.unfilled[:i], tr.unfilled[i+1:]...)
	return k
}

// relabel gives the entry's records its labels now: a kill read before the
// runtime told whose container it was.
func (e *entry) relabel(key string) {
	for _, k := range e.recorded() {
		k.Container, k.key = e.Meta, key
	}
}

// ReportEnd says that the kernel log's report numbered Seq is complete: its
// records name every victim it has.
type ReportEnd struct{ Seq uint64 }

func (e ReportEnd) key() string { return "" }

// reportEnded marks the records of report seq complete, and returns those
// ready now. With s.mu held.
func (s *Store) reportEnded(seq uint64) []*Kill {
	var out []*Kill
	for _, k := range s.kills.reports {
		if k.Details.ReportSeq == seq && k.reportOpen {
			k.reportOpen = false
			out = append(out, s.readyNow(k)...)
		}
	}
	return out
}

// readyNow returns k if it is complete and not announced: its report has
// ended, its outcome is decided and its container's labels are known.
// With s.mu held.
func (s *Store) readyNow(k *Kill) []*Kill {
	if k.announced || k.reportOpen || !k.decided {
		return nil
	}
	if e := s.containers[k.key]; e != nil && !e.observed && !s.silent(e.Meta.Runtime) {
		return nil
	}
	return s.announce(k)
}

// announce marks k announced and returns it. With s.mu held.
func (s *Store) announce(k *Kill) []*Kill {
	if k.announced {
		return nil
	}
	k.announced = true
	s.stampBefore(k)
	for i, p := range s.kills.pending {
		if p == k {
			s.kills.pending = append(s.kills.pending[:i], s.kills.pending[i+1:]...)
			break
		}
	}
	return []*Kill{k}
}

// Exit reasons: why a container's main process last exited.
const (
	ExitOOMKilled = "oom_killed" // the OOM killer ended it
	ExitSignal    = "signal"     // another signal ended it (a stop's SIGKILL or SIGTERM)
	ExitExited    = "exited"     // it exited with its own code
)

// exitReason decides why the main process exited with code at 'at', from
// what is known exactly: an exit by SIGKILL within exitWindow after an OOM
// kill in its run is the kill's (the main process's own, a group kill's,
// or that of a wrapper's child that the wrapper exits for). Exit codes
// above 128 are 128 plus the signal that ended the process.
func (e *entry) exitReason(code int, at time.Time) string {
	switch {
	case code == 137 && e.killBefore(at, e.startedAt):
		return ExitOOMKilled
	case code > 128 && code <= 128+64:
		return ExitSignal
	}
	return ExitExited
}

// killBefore reports whether a kill ended the run that began at start and
// ended at x: a kill the kernel said ended it (its main process's, a group
// kill's) in the run, or any kill within exitWindow before x.
func (e *entry) killBefore(x, start time.Time) bool {
	inRun := func(k time.Time) bool {
		return !k.IsZero() && !k.Before(start.Add(-exitClockSlack)) && !k.After(x.Add(exitClockSlack))
	}
	return inRun(e.lastEnding) || (inRun(e.lastKill) && !e.lastKill.Before(x.Add(-exitWindow)))
}

// exitCause takes a kill at t, described after the exit of its run was
// applied: that exit's reason is the kill's, if it was by SIGKILL.
func (e *entry) exitCause(t time.Time) {
	if e.Exited && e.ExitCode == 137 && !t.After(e.finished.Add(exitClockSlack)) && e.killBefore(e.finished, e.exitedStart) {
		e.ExitReason = ExitOOMKilled
	}
}

// SetKillsKept sets how many kill records are kept (0: none).
func (s *Store) SetKillsKept(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kills.keep = max(n, 0)
	s.kills.records, s.kills.start = nil, 0
}

// Kills returns up to n kill records (0: all kept) for which match returns
// true (nil: all), newest first: by the time of the kill (a record of a
// kill only a counter counted is made a moment after it).
func (s *Store) Kills(n int, match func(*Kill) bool) []Kill {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.kills.newest(0, match)
	for i := range out {
		if !out[i].announced {
			s.stampBefore(&out[i]) // as far as the readings tell now; fixed when announced
		}
	}
	slices.SortStableFunc(out, func(a, b Kill) int { return b.Time.Compare(a.Time) })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// OnKill registers f to be called, outside the store's lock, once for each
// kill record: when it is complete (its report ended, its outcome decided,
// its container's labels known), else once announceAfter or outcomeWait
// has passed (AnnounceKills).
func (s *Store) OnKill(f func(Kill)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onKill = f
}

// AnnounceKills makes the records of kills that only a counter or a runtime
// counted, and announces those that waited long enough. Call it every
// second or so.
func (s *Store) AnnounceKills(now time.Time) {
	s.mu.Lock()
	for key := range s.rising {
		if e := s.containers[key]; e != nil {
			s.recordRises(e, key, now)
		} else {
			delete(s.rising, key)
		}
	}
	var out []Kill
	for _, k := range append([]*Kill(nil), s.kills.pending...) {
		age := now.Sub(k.made)
		if !k.decided && age >= outcomeWait {
			decide(s.containers[k.key], k, s.timedOut(k))
		}
		if age >= announceAfter && k.decided {
			k.reportOpen = false
			for _, a := range s.announce(k) {
				out = append(out, a.copy())
			}
			continue
		}
		for _, a := range s.readyNow(k) {
			out = append(out, a.copy())
		}
	}
	f := s.onKill
	s.mu.Unlock()
	if f != nil {
		for _, k := range out {
			f(k)
		}
	}
}

// timedOut is the outcome of a record whose container neither exited nor
// was told to end by the kernel within outcomeWait: it lived on, if its
// runtime follows it.
func (s *Store) timedOut(k *Kill) string {
	e := s.containers[k.key]
	if e == nil || !e.observed {
		return ""
	}
	if e.running || e.finished.After(k.Time.Add(exitWindow)) {
		return OutcomeLivedOn
	}
	return ""
}
