package store

import (
	"fmt"
	"strconv"
	"strings"
)

// What held the memory at a kill: the kernel's report prints the memory
// cgroup's breakdown (memory.stat) and the task dump (every task of the
// cgroup whose limit was hit); the record keeps the breakdown, the largest
// tasks, and says in one sentence what dominated.

// Held is what the cgroup whose limit was hit held at the kill, in bytes.
type Held struct {
	Anon, File, Shmem, Kernel, Sock, PageTables, Slab, FileMapped, FileDirty, Swap uint64
	// KernelKnown says Kernel and Sock were printed (cgroup v2).
	KernelKnown bool
}

// Task is a task of the report's dump, its memory in bytes.
type Task struct {
	PID, UID int
	Name     string
	RSS      uint64
	// Anon, File and Shmem are the RSS's parts where the kernel printed
	// them (PartsKnown: Linux 6.2 and later).
	Anon, File, Shmem uint64
	PartsKnown        bool
	Swap              uint64
	OOMScoreAdj       int
}

// MaxTasks is how many of a dump's tasks a record keeps: the largest by
// RSS. KillDetails.TaskCount says how many there were.
const MaxTasks = 10

// Holders: what held most of the memory.
const (
	HeldAnon      = "anon"       // what processes allocated
	HeldShmem     = "shmem"      // tmpfs, an emptyDir with medium Memory, shared memory
	HeldPageCache = "page_cache" // files read or written
	HeldKernel    = "kernel"     // the kernel's memory for the cgroup
	HeldSockets   = "sockets"    // socket buffers
)

// Holder is what held most of the memory at a kill.
type Holder struct {
	Kind  string // Held*
	Bytes uint64
	// Task is the largest task, for HeldAnon; Tasks how many the dump
	// listed (many small ones: a fork bomb, a pool of workers).
	Task  *Task
	Tasks int
}

// Holder says what held most of the memory, from the report's breakdown;
// false where the report printed none (it was rate-limited).
func (d KillDetails) Holder() (Holder, bool) {
	h := d.Held
	if h == nil {
		return Holder{}, false
	}
	cache := h.File - min(h.File, h.Shmem) // shmem counts in file
	kernel := h.Kernel
	best := Holder{Kind: HeldAnon, Bytes: h.Anon}
	for _, c := range []Holder{{Kind: HeldShmem, Bytes: h.Shmem}, {Kind: HeldPageCache, Bytes: cache},
		{Kind: HeldKernel, Bytes: kernel}, {Kind: HeldSockets, Bytes: h.Sock}} {
		if c.Bytes > best.Bytes {
			best = c
		}
	}
	if best.Kind == HeldAnon && len(d.Tasks) > 0 {
		t := d.Tasks[0]
		best.Task, best.Tasks = &t, d.TaskCount
	}
	return best, best.Bytes > 0
}

// HeldBy is the Holder in one plain sentence, "" if not known: "shmem 24 MiB
// of 32 MiB: tmpfs or an emptyDir with medium Memory", "anonymous memory of
// "java" (pid 4242), 30 MiB".
func (d KillDetails) HeldBy() string {
	h, ok := d.Holder()
	if !ok {
		return ""
	}
	amount := FormatBytes(h.Bytes)
	if d.HasUsage && d.Limit > 0 {
		amount += " of " + FormatBytes(d.Limit)
	}
	switch h.Kind {
	case HeldShmem:
		return "shmem " + amount + ": tmpfs or an emptyDir with medium Memory"
	case HeldPageCache:
		return "page cache " + amount + ": files read or written, not given back"
	case HeldKernel:
		return "kernel memory " + amount
	case HeldSockets:
		return "kernel memory (sockets) " + amount
	}
	t := h.Task
	if t == nil {
		return "anonymous memory " + amount
	}
	held := t.RSS
	if t.PartsKnown {
		held = t.Anon
	}
	if h.Tasks >= manyTasks && held*10 < h.Bytes {
		return fmt.Sprintf("anonymous memory %s, in %d processes, the largest %s (pid %d) with %s", amount, h.Tasks, strconv.Quote(t.Name), t.PID, FormatBytes(held))
	}
	return fmt.Sprintf("anonymous memory of %s (pid %d), %s", strconv.Quote(t.Name), t.PID, FormatBytes(held))
}

// manyTasks is how many tasks make "many processes" where none holds a
// tenth of the memory.
const manyTasks = 20

// FormatBytes writes b in binary units, as kubectl shows memory: 512 B,
// 31.5 MiB, 32 MiB.
func FormatBytes(b uint64) string {
	if b < 1024 {
		return strconv.FormatUint(b, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(b)/1024, 0
	for v >= 1023.95 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + units[i]
}
