package kernel

import (
	"strconv"
	"strings"
)

// The task dump of an OOM report (vm.oom_dump_tasks=1, the default): every
// task of the memory cgroup whose limit was hit (of the node, for a global
// OOM), written before the victim is chosen.
//
//	Tasks state (memory values in pages):
//	[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
//	[    134]     0   134    16949     8491     8096        0       395   102400        0             0 dd
//
// Linux 6.1 and earlier have no rss_anon, rss_file, rss_shmem columns; the
// header says which there are.

// Task is one task of a report's task dump. Memory is in pages.
type Task struct {
	PID, UID, TGID int
	// RSS is the task's resident pages; Anon, File and Shmem their parts
	// where the kernel prints them (HasParts).
	RSS, Anon, File, Shmem uint64
	HasParts               bool
	Swap                   uint64 // swapped-out pages
	OOMScoreAdj            int
	Name                   string // at most 15 bytes, any bytes
}

// maxDumpTasks bounds the tasks kept of one dump: a tenant may run
// thousands. Tasks beyond it are counted (Report.DumpTasks), not kept.
const maxDumpTasks = 4096

// taskDump reads the dump of the report under way.
type taskDump struct {
	columns []string // of the header, "pid" first; nil until the header is read
}

const dumpStart = "Tasks state (memory values in pages):"

// header reads the dump's column header; false if t is none.
func (d *taskDump) header(t string) bool {
	if !strings.HasPrefix(t, "[  pid  ]") {
		return false
	}
	f := strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(t))
	if len(f) < 4 || f[0] != "pid" || f[len(f)-1] != "name" {
		return false
	}
	d.columns = f
	return true
}

// task reads one task line of the dump; false if t is none.
func (d *taskDump) task(t string) (Task, bool) {
	rest, ok := strings.CutPrefix(t, "[")
	if !ok || d.columns == nil {
		return Task{}, false
	}
	pidField, rest, ok := strings.Cut(rest, "]")
	if !ok {
		return Task{}, false
	}
	var task Task
	var err error
	if task.PID, err = strconv.Atoi(strings.TrimSpace(pidField)); err != nil || task.PID <= 0 {
		return Task{}, false
	}
	// The columns between pid and name, each a number; the name is the
	// rest of the line after one space (it may hold spaces).
	for _, col := range d.columns[1 : len(d.columns)-1] {
		rest = strings.TrimLeft(rest, " ")
		field, after, ok := strings.Cut(rest, " ")
		if !ok {
			return Task{}, false
		}
		rest = after
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return Task{}, false
		}
		switch col {
		case "uid":
			task.UID = int(n)
		case "tgid":
			task.TGID = int(n)
		case "rss":
			task.RSS = uint64(max(n, 0))
		case "rss_anon":
			task.Anon, task.HasParts = uint64(max(n, 0)), true
		case "rss_file":
			task.File = uint64(max(n, 0))
		case "rss_shmem":
			task.Shmem = uint64(max(n, 0))
		case "swapents":
			task.Swap = uint64(max(n, 0))
		case "oom_score_adj":
			if n < -1000 || n > 1000 {
				return Task{}, false
			}
			task.OOMScoreAdj = int(n)
		}
	}
	if len(rest) > maxComm {
		return Task{}, false // longer than the kernel prints: forged
	}
	task.Name = rest
	return task, true
}

// has reports whether the report's dump lists the task pid.
func (r *Report) has(pid int) bool {
	for _, t := range r.Tasks {
		if t.PID == pid {
			return true
		}
	}
	return false
}
