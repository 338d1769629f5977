package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Record is one record of the kernel log as /dev/kmsg gives it.
type Record struct {
	Seq  uint64        // the kernel's sequence number; a gap means records were lost
	Time time.Duration // since boot, on the kernel's log clock
	Text string        // the message, with the kernel's \xNN escapes undone
	// Facility is the syslog facility: 0 for the kernel's own messages. A
	// record written to /dev/kmsg from userspace never has 0 (the kernel
	// makes it LOG_USER), so only facility 0 can tell of an OOM kill.
	Facility int
}

// facilityKernel is the syslog facility of the kernel's own messages.
const facilityKernel = 0

// maxComm is the longest command name the kernel prints: TASK_COMM_LEN - 1
// bytes. A longer one in a line that claims to be an OOM report is forged.
const maxComm = 15

// errNotRecord is a /dev/kmsg read that is not a record: the kernel never
// writes one, but a file given as --path.kmsg might.
var errNotRecord = errors.New("not a kernel log record")

// ParseRecord parses one record of /dev/kmsg:
//
//	PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,MORE...];MESSAGE
//	 KEY=VALUE (continuation lines, ignored)
func ParseRecord(b []byte) (Record, error) {
	head, text, ok := bytes.Cut(b, []byte{';'})
	if !ok {
		return Record{}, fmt.Errorf("%w: no ';' in %q", errNotRecord, clip(b))
	}
	fields := strings.Split(string(head), ",")
	if len(fields) < 3 {
		return Record{}, fmt.Errorf("%w: header %q", errNotRecord, clip(head))
	}
	prio, err := strconv.ParseUint(fields[0], 10, 16)
	if err != nil {
		return Record{}, fmt.Errorf("%w: priority %q", errNotRecord, clip([]byte(fields[0])))
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: sequence %q", errNotRecord, clip([]byte(fields[1])))
	}
	us, err := strconv.ParseUint(fields[2], 10, 63)
	if err != nil || us > uint64(1<<63-1)/1000 {
		return Record{}, fmt.Errorf("%w: timestamp %q", errNotRecord, clip([]byte(fields[2])))
	}
	// The message ends at the first newline; continuation lines follow.
	if i := bytes.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	return Record{Seq: seq, Time: time.Duration(us) * time.Microsecond, Text: unescape(text), Facility: int(prio >> 3)}, nil
}

// unescape undoes the \xNN escapes the kernel writes for bytes that are not
// printable ASCII, and for the backslash itself.
func unescape(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			if v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// Victim is one process the OOM killer killed, as the kernel log tells it.
type Victim struct {
	Seq     uint64
	Time    time.Duration // since boot, on the kernel's log clock
	PID     int
	Process string // the command name (comm): at most 15 bytes, any bytes
	// ReportSeq names the kernel's report of the kill: the sequence number
	// of its first record read, or the victim's own where the report's
	// lines were rate-limited away (then it is a report of its own). The
	// members of a memory.oom.group kill share the chosen victim's.
	ReportSeq uint64
	// CgroupPath is the victim's memory cgroup, a path from the root of the
	// hierarchy, or empty when the log does not say (a line rate-limited
	// away, or lost).
	CgroupPath string
	// Guessed is true when CgroupPath is not the victim's as the kernel
	// printed it but a cgroup it was likely in: the chosen task's of a
	// report that named another pid (a child sacrificed for its parent
	// before Linux 5.1), or the group's of a memory.oom.group kill (Member).
	// The kernel reader confirms a guess before it takes it.
	Guessed bool
	// Member: the victim followed a memory.oom.group kill's "Tasks in" line
	// within its loop, so it is one of the group's members — or, after a
	// rate-limited report, the victim of another kill that the kernel
	// printed alone. Only its cgroup tells (see Guessed).
	Member bool
	// Memory is what the Killed line says the victim held.
	Memory VictimMemory
	// Group is the cgroup of a memory.oom.group kill the victim was killed
	// in, with every other task of it; empty for a kill of one process.
	Group string
	// Report is what the kill's report said before it; nil when the kernel
	// rate-limited the report away (ten in five seconds) or it was lost.
	// A Member's is the group kill's report: the kernel reader drops it if
	// the victim turns out not to be a member.
	Report *Report
}

// VictimMemory is the victim's memory as the Killed line gives it.
type VictimMemory struct {
	Known                      bool   // the line gave the RSS (Linux 4.14 and later)
	AnonRSS, FileRSS, ShmemRSS uint64 // bytes
	UID                        int    // -1 if the line does not say
	OOMScoreAdj                int
	HasOOMScoreAdj             bool
}

// Report is what the kernel's report of an OOM kill says of the kill as a
// whole, before it names the victim.
type Report struct {
	// Seq is the sequence number of the report's first record read: the
	// victims of one kill (the members of a memory.oom.group kill) share it.
	Seq uint64
	// Trigger is the process whose allocation invoked the OOM killer: the
	// one that pushed the cgroup (or the node) over its limit.
	TriggerPID     int // 0 if the report did not say
	TriggerProcess string
	// Constraint is the oom-kill line's: CONSTRAINT_MEMCG for a cgroup's
	// limit, CONSTRAINT_NONE for the node's memory, ... Empty when the
	// oom-kill line was not read.
	Constraint string
	// LimitCgroup is the cgroup whose limit was hit (the oom-kill line's
	// oom_memcg); empty for a global OOM, or when the line was not read.
	LimitCgroup string
	Global      bool
	// Usage and Limit are that cgroup's memory usage and limit in bytes,
	// from the report's "memory: usage ..., limit ..." line; known if
	// HasUsage.
	Usage, Limit uint64
	HasUsage     bool
	// Tasks is the report's task dump (the first maxDumpTasks), and
	// DumpTasks how many tasks it listed; both empty where the kernel wrote
	// none (vm.oom_dump_tasks=0) or it was not read.
	Tasks     []Task
	DumpTasks int
	// Breakdown is what the cgroup whose limit was hit held (its
	// memory.stat), where the report printed it.
	Breakdown *Breakdown
}

// oomLog pairs the lines of one OOM kill in the kernel log. The OOM killer
// holds a global lock for a whole kill, so the lines of two kills never
// interleave; other messages may.
//
// The lines it reads (Linux 4.14 to 6.x; "Task in" is older):
//
//	COMM invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0   (the report begins)
//	CPU: 0 UID: 0 PID: 42 Comm: dd Not tainted ...                                    (the trigger's pid)
//	memory: usage 32768kB, limit 32768kB, failcnt 123                                 (the limit that was hit)
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=ID,mems_allowed=0,oom_memcg=/P,task_memcg=/P,task=dd,pid=42,uid=0
//	oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/P,task=dd,pid=42,uid=0
//	Task in /P killed as a result of limit of /P
//	Memory cgroup out of memory: Killed process 42 (dd) total-vm:67804kB, anon-rss:32384kB, file-rss:1088kB, shmem-rss:0kB, UID:0 pgtables:168kB oom_score_adj:0
//	Out of memory: Killed process 42 (dd) total-vm:...          (a global OOM)
//	Killed process 42 (dd) total-vm:...                         (before 5.1; after "Kill process 42 (dd) score 1000 or sacrifice child")
//	Tasks in /P are going to be killed due to memory.oom.group set
//
// Everything but the Killed line is rate-limited with the report (ten
// reports in five seconds, host-wide); the Killed line never is.
type oomLog struct {
	// partial is the first piece of an oom-kill or Tasks in line that came
	// as several records: the kernel writes these lines piecewise (pr_cont),
	// and a message of another CPU in between ends a record. The pieces are
	// joined when they follow each other.
	partial   string
	parts     int
	cgroup    string  // of the current kill, from its oom-kill or Task in line
	pid       int     // the chosen task of the current kill
	victimSet bool    // the current kill's first victim was seen
	report    *Report // of the current kill, nil before its first line
	group     string  // memory.oom.group kill under way in this cgroup
	groupAt   time.Duration
	dump      *taskDump // the report's task dump under way, nil if none
	statLines int       // lines of the report's stats block read; -1: none under way
	// open is the number of the report under way (its ReportSeq), 0 if
	// none: it ends when the next one begins, when a Killed line comes
	// that is no member of it, or when the log falls silent (idle).
	open    uint64
	lastSeq uint64
	started bool
}

const groupSuffix = " are going to be killed due to memory.oom.group set"

// maxParts bounds how many records of one split line are joined.
const maxParts = 8

func (l *oomLog) keepPartial(t string) {
	if l.parts >= maxParts {
		l.parts = 0
		return
	}
	l.partial = t
	l.parts++
}

// groupWindow bounds how long after its "Tasks in" line a Killed line may
// still be a member of a memory.oom.group kill: members are killed in one
// loop, but a slow console can stretch it. A Killed line in the window is
// only a candidate: the kernel reader confirms it (Victim.Member).
const groupWindow = 2 * time.Second

// reset forgets the kill under way: records were lost. It returns the
// number of the report that was open (0 if none): it has ended.
func (l *oomLog) reset() (ended uint64) {
	ended = l.open
	*l = oomLog{lastSeq: l.lastSeq, started: l.started}
	return ended
}

// idle says the log has nothing more to read for now: the report under way
// is complete (the kernel writes one in a burst, under its OOM lock). It
// returns its number, 0 if none was open.
func (l *oomLog) idle() (ended uint64) {
	ended, l.open = l.open, 0
	return ended
}

// begin starts the report of a new kill at the record seq. It returns the
// number of the report it ends, 0 if none.
func (l *oomLog) begin(seq uint64) (rep *Report, ended uint64) {
	ended = l.open
	l.cgroup, l.pid, l.victimSet, l.group, l.dump, l.statLines = "", 0, false, "", nil, -1
	l.report = &Report{Seq: seq}
	l.open = seq
	return l.report, ended
}

// add reads one record. It returns the victim it names, if any; the number
// of a report the record ended, if any; and how many records were lost
// before it (a gap in the sequence numbers).
func (l *oomLog) add(r Record) (v *Victim, ended, lost uint64) {
	if l.started && r.Seq > l.lastSeq+1 {
		lost = r.Seq - l.lastSeq - 1
		ended = l.reset()
	}
	if !l.started || r.Seq > l.lastSeq {
		l.lastSeq, l.started = r.Seq, true
	}
	if r.Facility != facilityKernel {
		return nil, ended, lost // written from userspace: anyone can write that
	}
	// end records that the record ended a report, once.
	end := func(seq uint64) {
		if seq != 0 && ended == 0 {
			ended = seq
		}
	}
	t := r.Text
	if l.partial != "" {
		if strings.HasPrefix(t, ",") || strings.HasPrefix(t, "/") || strings.HasPrefix(t, " are going to be killed") {
			t = l.partial + t
		}
		l.partial = ""
	}
	switch {
	case strings.HasPrefix(t, "oom-kill:"):
		if k, ok := parseOOMKill(t); ok {
			rep := l.report
			if rep == nil || l.victimSet {
				var e uint64
				rep, e = l.begin(r.Seq) // its first lines were lost or rate-limited: a report of its own
				end(e)
			}
			l.cgroup, l.pid, l.victimSet, l.parts = k.taskMemcg, k.pid, false, 0
			l.group, l.dump = "", nil
			rep.Constraint, rep.LimitCgroup, rep.Global = k.constraint, k.oomMemcg, k.global
		} else {
			l.keepPartial(t)
		}
	case invokedOOMKiller(t) != "":
		// The report of a new kill begins. It comes before "Tasks in": a
		// command name may read "Tasks in /x".
		rep, e := l.begin(r.Seq)
		end(e)
		rep.TriggerProcess = invokedOOMKiller(t)
	case strings.HasPrefix(t, "CPU: ") && l.report != nil && !l.victimSet && l.report.TriggerPID == 0:
		l.report.TriggerPID = parseCPULine(t)
	case strings.HasPrefix(t, "memory: usage ") && l.report != nil && !l.victimSet && !l.report.HasUsage:
		l.report.Usage, l.report.Limit, l.report.HasUsage = parseUsage(t)
	case strings.HasPrefix(t, statsStart) && l.report != nil && !l.victimSet && l.report.Breakdown == nil:
		l.report.Breakdown, l.statLines = &Breakdown{}, 0
	case l.statLines >= 0 && l.report != nil && l.report.Breakdown != nil && l.report.Breakdown.stats(t, &l.statLines):
	case t == dumpStart && l.report != nil && !l.victimSet && l.report.DumpTasks == 0:
		l.statLines = -1
		l.dump = &taskDump{}
	case l.dump != nil && l.dump.columns == nil && l.dump.header(t):
	case l.dump != nil && strings.HasPrefix(t, "["):
		if task, ok := l.dump.task(t); ok {
			if len(l.report.Tasks) < maxDumpTasks {
				l.report.Tasks = append(l.report.Tasks, task)
			}
			l.report.DumpTasks++
		}
	case strings.HasPrefix(t, "Tasks in ") && !strings.HasSuffix(t, groupSuffix):
		l.keepPartial(t)
	case strings.HasPrefix(t, "Task in "):
		if cg, limit, ok := strings.Cut(strings.TrimPrefix(t, "Task in "), " killed as a result of limit of "); ok && strings.HasPrefix(cg, "/") {
			rep := l.report
			if rep == nil || l.victimSet {
				var e uint64
				rep, e = l.begin(r.Seq)
				end(e)
			}
			l.cgroup, l.pid, l.victimSet, l.group = cg, 0, false, ""
			rep.Constraint, rep.LimitCgroup = "CONSTRAINT_MEMCG", limit
		}
	case strings.HasPrefix(t, "Tasks in "):
		l.group = strings.TrimSuffix(strings.TrimPrefix(t, "Tasks in "), groupSuffix)
		l.groupAt, l.parts = r.Time, 0
		if l.open == 0 {
			// A group kill whose chosen victim was not read: a report of
			// its own for its members.
			l.open = r.Seq
		}
	default:
		pid, comm, mem, ok := parseKilled(t)
		if !ok {
			return nil, ended, lost
		}
		v = &Victim{Seq: r.Seq, Time: r.Time, PID: pid, Process: comm, Memory: mem}
		inGroup := l.group != "" && r.Time-l.groupAt <= groupWindow
		switch {
		case !l.victimSet && l.cgroup != "" && (l.pid == 0 || l.pid == pid):
			v.CgroupPath, v.Report = l.cgroup, l.report
		case !l.victimSet && l.cgroup != "":
			v.CgroupPath, v.Guessed, v.Report = l.cgroup, true, l.report // a child sacrificed for its parent
		case inGroup && l.pid == pid && l.cgroup != "":
			// The chosen victim, killed again as a member: the kernel
			// printed its cgroup.
			v.CgroupPath, v.Member, v.Group, v.Report = l.cgroup, true, l.group, l.report
		case inGroup:
			v.CgroupPath, v.Guessed, v.Member, v.Group, v.Report = l.group, true, true, l.group, l.report
		case !l.victimSet && l.report != nil && strings.HasPrefix(t, "Out of memory"):
			v.Report = l.report // a global OOM whose oom-kill line was lost
		}
		if v.Report == nil && !l.victimSet && l.report != nil && l.cgroup == "" && l.group == "" {
			v.Report = l.report
		}
		if l.victimSet && !inGroup {
			// A second victim with no group kill under way: the kernel
			// printed its kill alone (its report was rate-limited away).
			// A report of its own, which ends the one before.
			end(l.open)
			l.report, l.cgroup, l.pid, l.group = nil, "", 0, ""
			l.open = 0
		}
		if l.open == 0 {
			l.open = r.Seq
		}
		v.ReportSeq = l.open
		l.victimSet = true
		return v, ended, lost
	}
	return nil, ended, lost
}

// parseCPULine reads the pid of "CPU: 0 UID: 0 PID: 42 Comm: dd ..." (or
// "CPU: 0 PID: 42 Comm: dd ..." before Linux 6.6); 0 if it has none.
func parseCPULine(t string) int {
	_, rest, ok := strings.Cut(t, " PID: ")
	if !ok {
		return 0
	}
	f, _, _ := strings.Cut(rest, " ")
	pid, err := strconv.Atoi(f)
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// parseUsage reads "memory: usage 32768kB, limit 32768kB, failcnt 123".
func parseUsage(t string) (usage, limit uint64, ok bool) {
	u, ok1 := kiB(t, "memory: usage ")
	l, ok2 := kiB(t, ", limit ")
	return u, l, ok1 && ok2
}

// kiB reads the number of kB after key in t, in bytes.
func kiB(t, key string) (uint64, bool) {
	i := strings.Index(t, key)
	if i < 0 {
		return 0, false
	}
	rest := t[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 || !strings.HasPrefix(rest[j:], "kB") {
		return 0, false
	}
	n, err := strconv.ParseUint(rest[:j], 10, 64)
	if err != nil || n > 1<<53 {
		return 0, false
	}
	return n << 10, true
}

// invokedOOMKiller returns the command name that begins the first line of
// an OOM report, "COMM invoked oom-killer: gfp_mask=...", or "" if t is none.
func invokedOOMKiller(t string) string {
	i := strings.Index(t, " invoked oom-killer: gfp_mask=")
	if i <= 0 || i > maxComm {
		return ""
	}
	return t[:i]
}

// oomKillLine is what an oom-kill line says.
type oomKillLine struct {
	constraint string // CONSTRAINT_MEMCG, CONSTRAINT_NONE, ...
	// oomMemcg is the cgroup whose limit was hit (empty for a global OOM),
	// taskMemcg the victim's. Both are empty where the line could be read
	// more than one way (see parseOOMKill).
	oomMemcg, taskMemcg string
	global              bool
	comm                string
	pid, uid            int
}

// parseOOMKill reads an oom-kill line:
//
//	oom-kill:constraint=C,nodemask=N,cpuset=S,mems_allowed=M,oom_memcg=P1,task_memcg=P2,task=COMM,pid=N,uid=N
//	oom-kill:constraint=C,nodemask=N,cpuset=S,mems_allowed=M,global_oom,task_memcg=P2,task=COMM,pid=N,uid=N
//
// Cgroup names and COMM may hold anything, commas and "task=" included, and
// both are chosen by whoever runs a process or makes a cgroup. So the line
// is read from both ends: pid and uid (digits) from the end; COMM, at most
// maxComm bytes, before them; of the paths, only a reading where the
// victim's cgroup P2 lies in P1 (the kernel kills in the cgroup that hit
// its limit). Where more than one reading fits, the paths are left empty:
// the victim's cgroup is then read from /proc/PID/cgroup, or not known.
func parseOOMKill(t string) (k oomKillLine, ok bool) {
	rest, ok := strings.CutPrefix(t, "oom-kill:constraint=")
	if !ok {
		return oomKillLine{}, false
	}
	k.constraint, _, _ = strings.Cut(rest, ",")
	i := strings.LastIndex(t, ",pid=")
	if i < 0 {
		return oomKillLine{}, false
	}
	pid, uid, ok := strings.Cut(t[i+len(",pid="):], ",uid=")
	if !ok {
		return oomKillLine{}, false
	}
	var err error
	if k.pid, err = strconv.Atoi(strings.TrimSpace(pid)); err != nil || k.pid <= 0 { // some versions pad it: pid= 4242
		return oomKillLine{}, false
	}
	if k.uid, err = strconv.Atoi(strings.TrimSpace(uid)); err != nil || k.uid < 0 {
		return oomKillLine{}, false
	}
	head := t[:i] // ...,task_memcg=P2,task=COMM
	const task = ",task="
	var starts []int
	for j := len(head) - len(task); j >= 0 && len(head)-j-len(task) <= maxComm; j-- {
		if strings.HasPrefix(head[j:], task) {
			starts = append(starts, j)
		}
	}
	if len(starts) == 0 {
		return oomKillLine{}, false
	}
	k.comm = head[starts[0]+len(task):]
	if len(starts) > 1 {
		return k, true // COMM holds ",task=": where the path ends is not known
	}
	body := head[:starts[0]] // ...,oom_memcg=P1,task_memcg=P2 or ...,global_oom,task_memcg=P2
	const taskMemcg, oomMemcg, global = ",task_memcg=", ",oom_memcg=", ",global_oom"
	found := 0
	for m := range indexes(body, taskMemcg) {
		p2 := body[m+len(taskMemcg):]
		if !strings.HasPrefix(p2, "/") {
			continue
		}
		if strings.HasSuffix(body[:m], global) {
			found++
			k.global, k.oomMemcg, k.taskMemcg = true, "", p2
			continue
		}
		for o := range indexes(body[:m], oomMemcg) {
			p1 := body[o+len(oomMemcg) : m]
			if p2 == p1 || p1 == "/" || strings.HasPrefix(p2, p1+"/") {
				found++
				k.global, k.oomMemcg, k.taskMemcg = false, p1, p2
			}
		}
	}
	switch found {
	case 0:
		return oomKillLine{}, false
	case 1:
		return k, true
	}
	k.global, k.oomMemcg, k.taskMemcg = false, "", "" // more than one reading fits
	return k, true
}

// indexes yields the index of every occurrence of sub in s.
func indexes(s, sub string) func(yield func(int) bool) {
	return func(yield func(int) bool) {
		for off := 0; ; {
			i := strings.Index(s[off:], sub)
			if i < 0 || !yield(off+i) {
				return
			}
			off += i + 1
		}
	}
}

// killedPrefixes are what the kernel writes before "Killed process": the
// message of the kill (Linux 5.1 and later), or nothing (before).
var killedPrefixes = []string{
	"Memory cgroup out of memory: ",
	"Out of memory: ",
	"Out of memory (oom_kill_allocating_task): ",
	"",
}

// parseKilled reads "Killed process PID (COMM) total-vm:..." (also the "PID
// (COMM), UID N, total-vm" of some vendor kernels), only where the kernel
// writes it: at the start of the message, or after the kill's message. Other
// kernel messages quote strings anyone sets (Yama's ptrace denial quotes a
// command line), so the line must begin so. It is not fooled by "Kill
// process ... or sacrifice child", nor by the oom_reaper's "reaped process"
// lines. COMM, at most maxComm bytes, may hold spaces and parentheses.
func parseKilled(t string) (pid int, comm string, mem VictimMemory, ok bool) {
	var rest string
	for _, p := range killedPrefixes {
		if rest, ok = strings.CutPrefix(t, p+"Killed process "); ok {
			break
		}
	}
	if !ok {
		return 0, "", mem, false
	}
	j := strings.IndexByte(rest, ' ')
	if j <= 0 {
		return 0, "", mem, false
	}
	pid, err := strconv.Atoi(rest[:j])
	if err != nil || pid <= 0 {
		return 0, "", mem, false
	}
	rest, ok = strings.CutPrefix(rest[j+1:], "(")
	if !ok {
		return 0, "", mem, false
	}
	// COMM ends at the last ") total-vm:" (or the like) that leaves it at
	// most maxComm bytes: what follows the real one is numbers.
	end := -1
	for k := min(maxComm, len(rest)); k >= 0; k-- {
		if strings.HasPrefix(rest[k:], ") total-vm:") || strings.HasPrefix(rest[k:], "), UID ") || strings.HasPrefix(rest[k:], "), total-vm:") {
			end = k
			break
		}
	}
	if end < 0 && strings.HasSuffix(rest, ")") && len(rest)-1 <= maxComm {
		end = len(rest) - 1
	}
	if end < 0 {
		return 0, "", mem, false
	}
	return pid, rest[:end], parseVictimMemory(rest[end:]), true
}

// parseVictimMemory reads what follows the command name of a Killed line:
// ") total-vm:67804kB, anon-rss:32384kB, file-rss:1088kB, shmem-rss:0kB, UID:0
// pgtables:168kB oom_score_adj:0", or "), UID 1000, total-vm:...".
func parseVictimMemory(t string) VictimMemory {
	m := VictimMemory{UID: -1}
	var ok1, ok2, ok3 bool
	m.AnonRSS, ok1 = kiB(t, "anon-rss:")
	m.FileRSS, ok2 = kiB(t, "file-rss:")
	m.ShmemRSS, ok3 = kiB(t, "shmem-rss:")
	m.Known = ok1 && ok2 && ok3
	for _, key := range []string{" UID:", ", UID "} {
		if _, rest, ok := strings.Cut(t, key); ok {
			f, _, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
			if uid, err := strconv.Atoi(strings.TrimSuffix(f, ",")); err == nil && uid >= 0 {
				m.UID = uid
			}
			break
		}
	}
	if _, rest, ok := strings.Cut(t, " oom_score_adj:"); ok {
		f, _, _ := strings.Cut(rest, " ")
		if adj, err := strconv.Atoi(f); err == nil && adj >= -1000 && adj <= 1000 {
			m.OOMScoreAdj, m.HasOOMScoreAdj = adj, true
		}
	}
	return m
}
