package kernel

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// BenchmarkForgetAmongManyWatches is what letting go of one removed
// cgroup's watches costs while the reader holds those of a large host: a
// directory and a memory.events for each of 5,000 cgroups.
func BenchmarkForgetAmongManyWatches(b *testing.B) {
	root := b.TempDir()
	w, err := newWatcher(root, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer w.close()
	watch := func(dir string) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "memory.events"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := w.add(dir); err != nil {
			b.Fatal(err)
		}
		if err := w.addFile(dir); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 5000 {
		watch(filepath.Join(root, fmt.Sprintf("held%d", i)))
	}
	dir := filepath.Join(root, "churned")
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		watch(dir)
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w.forget(dir)
	}
	b.StopTimer()
	if n := w.count(); n != 2*5000+1 {
		b.Fatalf("%d watches held, want %d", n, 2*5000+1)
	}
}

// BenchmarkWalk is one walk of the hierarchy, every 30 s and after an
// inotify overflow, on this host's real cgroupfs with 200 container
// cgroups (empty, named as Docker's --cgroup-parent makes them) under a
// parent the reader trusts: the listing of the cgroups where containers
// can be, and the reading of each container's counters (on cgroup v1
// also its limit hits: the walk reads them all).
func BenchmarkWalk(b *testing.B) {
	t := &testing.T{}
	h, self := realHierarchy(t)
	if t.Failed() || t.Skipped() {
		b.Skip("no real cgroupfs to walk")
	}
	parentPath := filepath.Join(self, fmt.Sprintf("mcm-walk-bench-%d", os.Getpid()))
	parent := filepath.Join(h.Root, parentPath)
	if err := os.Mkdir(parent, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.Remove(parent)
	for i := range 200 {
		dir := filepath.Join(parent, fmt.Sprintf("%064x", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		defer os.Remove(dir)
	}
	cfg := Config{SysFS: "/sys", ProcFS: "/proc", CgroupParents: []string{parentPath}}
	st := store.New(time.Minute)
	c := newCgroups(cfg, st, nil, slog.New(slog.DiscardHandler))
	c.h, c.found = h, true
	c.scan()
	if n := c.count(); n != 200 {
		b.Fatalf("%d cgroups tracked, want 200", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.scan()
	}
}
