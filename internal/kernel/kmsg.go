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
}

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
	if _, err := strconv.ParseUint(fields[0], 10, 16); err != nil {
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
	return Record{Seq: seq, Time: time.Duration(us) * time.Microsecond, Text: unescape(text)}, nil
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
	// Cgroup is the victim's memory cgroup, a path from the root of the
	// hierarchy, or empty when the log does not say (a line rate-limited
	// away, or lost).
	Cgroup string
	// Guessed is true when Cgroup comes from an earlier line of the same kill
	// that named another pid (a child sacrificed for its parent before
	// Linux 5.1, or a member of a memory.oom.group kill): the caller checks
	// it against the process's own cgroup where it can.
	Guessed bool
}

// oomLog pairs the lines of one OOM kill in the kernel log. The OOM killer
// holds a global lock for a whole kill, so the lines of two kills never
// interleave; other messages may.
//
// The lines it reads (Linux 4.19 to 6.x; "Task in" is older):
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=ID,mems_allowed=0,oom_memcg=/P,task_memcg=/P,task=dd,pid=42,uid=0
//	oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/P,task=dd,pid=42,uid=0
//	Task in /P killed as a result of limit of /P
//	Memory cgroup out of memory: Killed process 42 (dd) total-vm:67804kB, anon-rss:32384kB, ...
//	Out of memory: Killed process 42 (dd) total-vm:...          (a global OOM)
//	Killed process 42 (dd) total-vm:...                         (before 5.1; after "Kill process 42 (dd) score 1000 or sacrifice child")
//	Tasks in /P are going to be killed due to memory.oom.group set
//
// The oom-kill line is rate-limited with the rest of the report (ten per
// five seconds); the Killed line never is.
type oomLog struct {
	// partial is the first piece of an oom-kill or Tasks in line that came
	// as several records: the kernel writes these lines piecewise (pr_cont),
	// and a message of another CPU in between ends a record. The pieces are
	// joined when they follow each other.
	partial   string
	parts     int
	cgroup    string // of the current kill, from its oom-kill or Task in line
	pid       int    // the chosen task of the current kill
	victimSet bool   // the current kill's first victim was seen
	group     string // memory.oom.group kill under way in this cgroup
	groupAt   time.Duration
	lastSeq   uint64
	started   bool
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
// loop, but a slow console can stretch it.
const groupWindow = 2 * time.Second

// reset forgets the kill under way: records were lost.
func (l *oomLog) reset() {
	*l = oomLog{lastSeq: l.lastSeq, started: l.started}
}

// add reads one record. It returns the victim it names, if any, and how many
// records were lost before it (a gap in the sequence numbers).
func (l *oomLog) add(r Record) (v *Victim, lost uint64) {
	if l.started && r.Seq > l.lastSeq+1 {
		lost = r.Seq - l.lastSeq - 1
		l.reset()
	}
	if !l.started || r.Seq > l.lastSeq {
		l.lastSeq, l.started = r.Seq, true
	}
	t := r.Text
	if l.partial != "" {
		if strings.HasPrefix(t, ",") || strings.HasPrefix(t, "/") || strings.HasPrefix(t, " are going to be killed") {
			t = l.partial + t
		}
		l.partial = ""
	}
	switch {
	case strings.Contains(t, "oom-kill:constraint="):
		if cg, pid, ok := parseOOMKill(t); ok {
			l.cgroup, l.pid, l.victimSet, l.parts = cg, pid, false, 0
			l.group = ""
		} else {
			l.keepPartial(t)
		}
	case strings.HasPrefix(t, "Tasks in ") && !strings.HasSuffix(t, groupSuffix):
		l.keepPartial(t)
	case strings.Contains(t, " invoked oom-killer: "):
		// The report of a new kill begins.
		l.cgroup, l.pid, l.victimSet, l.group = "", 0, false, ""
	case strings.HasPrefix(t, "Task in "):
		if cg, _, ok := strings.Cut(strings.TrimPrefix(t, "Task in "), " killed as a result of limit of "); ok && strings.HasPrefix(cg, "/") {
			l.cgroup, l.pid, l.victimSet, l.group = cg, 0, false, ""
		}
	case strings.HasPrefix(t, "Tasks in "):
		l.group = strings.TrimSuffix(strings.TrimPrefix(t, "Tasks in "), groupSuffix)
		l.groupAt, l.parts = r.Time, 0
	default:
		pid, comm, ok := parseKilled(t)
		if !ok {
			return nil, lost
		}
		v = &Victim{Seq: r.Seq, Time: r.Time, PID: pid, Process: comm}
		switch {
		case !l.victimSet && l.cgroup != "" && (l.pid == 0 || l.pid == pid):
			v.Cgroup = l.cgroup
		case !l.victimSet && l.cgroup != "":
			v.Cgroup, v.Guessed = l.cgroup, true // a child sacrificed for its parent
		case l.group != "" && r.Time-l.groupAt <= groupWindow:
			v.Cgroup, v.Guessed = l.group, true
		}
		l.victimSet = true
		return v, lost
	}
	return nil, lost
}

// parseOOMKill reads the victim's memory cgroup and pid from an oom-kill
// line. Cgroup names may hold commas, so the fields around the path are found
// from both ends.
func parseOOMKill(t string) (cgroup string, pid int, ok bool) {
	const memcg = ",task_memcg="
	i := strings.Index(t, memcg)
	if i < 0 {
		return "", 0, false
	}
	rest := t[i+len(memcg):]
	// rest: PATH,task=COMM,pid=N,uid=N
	j := strings.LastIndex(rest, ",pid=")
	if j < 0 {
		return "", 0, false
	}
	p := rest[j+len(",pid="):]
	if k := strings.IndexByte(p, ','); k >= 0 {
		p = p[:k]
	}
	n, err := strconv.Atoi(strings.TrimSpace(p)) // some versions pad it: pid= 4242
	if err != nil || n <= 0 {
		return "", 0, false
	}
	k := strings.LastIndex(rest[:j], ",task=")
	if k < 0 {
		return "", 0, false
	}
	cgroup = rest[:k]
	if !strings.HasPrefix(cgroup, "/") {
		return "", 0, false
	}
	return cgroup, n, true
}

// parseKilled reads "... Killed process PID (COMM) total-vm:..." (also the
// "PID (COMM), UID N, total-vm" of some vendor kernels). It is not fooled by
// "Kill process ... or sacrifice child", nor by the oom_reaper's
// "reaped process" lines. COMM may hold spaces and parentheses.
func parseKilled(t string) (pid int, comm string, ok bool) {
	const kp = "Killed process "
	i := strings.Index(t, kp)
	if i < 0 {
		return 0, "", false
	}
	rest := t[i+len(kp):]
	j := strings.IndexByte(rest, ' ')
	if j <= 0 {
		return 0, "", false
	}
	pid, err := strconv.Atoi(rest[:j])
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	rest = rest[j+1:]
	if !strings.HasPrefix(rest, "(") {
		return 0, "", false
	}
	rest = rest[1:]
	end := -1
	for _, sep := range []string{") total-vm:", "), UID ", "), total-vm:"} {
		if k := strings.Index(rest, sep); k >= 0 && (end < 0 || k < end) {
			end = k
		}
	}
	if end < 0 {
		end = strings.LastIndexByte(rest, ')')
	}
	if end < 0 {
		return 0, "", false
	}
	return pid, rest[:end], true
}
