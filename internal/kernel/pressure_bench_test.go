package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkPressureRead measures what the warnings before a kill add to
// the reading of one cgroup, against this host's real kernel files: on
// cgroup v1 memory.failcnt and memory.memsw.failcnt beside the
// memory.oom_control the walk reads anyway; on v2 memory.pressure (the
// unified hierarchy's root here: this host has no v2 memory controller,
// and PSI's file is the same in every cgroup), and the parse of the limit
// hits from memory.events, which the reader has read already.
func BenchmarkPressureRead(b *testing.B) {
	v1 := ownV1MemoryCgroup(b)
	b.Run("v1/oom_control_alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := readFile(filepath.Join(v1, "memory.oom_control"))
			if err == nil {
				_, err = ParseOOMControl(c)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("v1/failcnt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := readFailcnt(v1); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("v2/memory.pressure", func(b *testing.B) {
		dir := "/sys/fs/cgroup/unified"
		if _, err := os.Stat(filepath.Join(dir, "memory.pressure")); err != nil {
			b.Skip("no PSI file in", dir)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok, err := readPSI(dir); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("v2/parse_memory.events", func(b *testing.B) {
		events := []byte("low 0\nhigh 5\nmax 1204\noom 3\noom_kill 3\noom_group_kill 0\n")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseLimitEvents(events); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// ownV1MemoryCgroup is the directory of this process's cgroup v1 memory
// cgroup; the benchmark is skipped where there is none.
func ownV1MemoryCgroup(b *testing.B) string {
	b.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(self), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "memory" {
			dir := filepath.Join("/sys/fs/cgroup/memory", f[2])
			if _, err := os.Stat(filepath.Join(dir, "memory.failcnt")); err == nil {
				return dir
			}
		}
	}
	b.Skip("no cgroup v1 memory cgroup of this process")
	return ""
}
