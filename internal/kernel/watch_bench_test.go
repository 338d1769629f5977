package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
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
