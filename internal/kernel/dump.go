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

// The memory breakdown of an OOM report: what the memory cgroup whose limit
// was hit held, from its "Memory cgroup stats for /P:" block (memory.stat,
// in bytes). cgroup v1 writes it a line a record, with the hierarchy's
// totals (total_rss, ...); v2 a line a record (6.12) or all in one record
// (6.1).

// Breakdown is what the report's cgroup held, in bytes; a field is 0 where
// the kernel did not print it (v1 prints no kernel memory).
type Breakdown struct {
	Anon, File, Shmem, Kernel, Sock, PageTables, Slab, FileMapped, FileDirty, Swap uint64
	// V2 says the block was cgroup v2's (Kernel and Sock are known).
	V2 bool
}

const statsStart = "Memory cgroup stats for "

// maxStats bounds the lines of one stats block read: the kernel prints
// some 60.
const maxStats = 128

// stats reads the lines of a stats block (one or more "key value" lines,
// in one record or several) into b. It returns false for a line that is
// none: the block has ended.
func (b *Breakdown) stats(t string, lines *int) bool {
	ok := false
	for _, line := range strings.Split(t, "\n") {
		key, value, found := strings.Cut(strings.TrimSpace(line), " ")
		if !found || key == "" {
			return ok
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return ok
		}
		if *lines++; *lines > maxStats {
			return ok
		}
		ok = true
		b.take(key, n)
	}
	return ok
}

// take keeps one memory.stat field, v1's hierarchical totals before its
// own cgroup's.
func (b *Breakdown) take(key string, n uint64) {
	switch key {
	case "anon":
		b.Anon, b.V2 = n, true
	case "file":
		b.File = n
	case "shmem", "total_shmem":
		b.Shmem = max(b.Shmem, n)
	case "kernel":
		b.Kernel = n
	case "sock":
		b.Sock = n
	case "pagetables":
		b.PageTables = n
	case "slab":
		b.Slab = n
	case "file_mapped", "mapped_file", "total_mapped_file":
		b.FileMapped = max(b.FileMapped, n)
	case "file_dirty", "dirty", "total_dirty":
		b.FileDirty = max(b.FileDirty, n)
	case "rss", "total_rss":
		b.Anon = max(b.Anon, n)
	case "cache", "total_cache":
		b.File = max(b.File, n)
	case "swap", "total_swap":
		b.Swap = max(b.Swap, n)
	}
}
