package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kernel"
)

// The warnings before a kill, on this host's cgroup v1: how often a
// container's usage hit its limit, exactly as the kernel counts it, and
// the kill's record of what came in the minute before it. (cgroup v2's
// memory.events and PSI are tested in a VM: test/vm.)

// kernelLimitHits reads the container's limit hits as the kernel keeps
// them: memory.failcnt and memory.memsw.failcnt (a charge fails at one).
func kernelLimitHits(id string) (uint64, error) {
	var n uint64
	for _, name := range []string{"memory.failcnt", "memory.memsw.failcnt"} {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", env.cgroupParent, id, name))
		if os.IsNotExist(err) && name == "memory.memsw.failcnt" {
			continue // no swap accounting
		}
		if err != nil {
			return 0, err
		}
		v, err := kernel.ParseFailcnt(b)
		if err != nil {
			return 0, err
		}
		n += v
	}
	return n, nil
}

// waitLimitHits waits until the exporter shows the kernel's count of the
// container's limit hits, and that count is above 0: the exporter reads
// failcnt at a kill and at its walk, every 30 s.
func (e *exporter) waitLimitHits(t *testing.T, id string) float64 {
	t.Helper()
	var got float64
	eventually(t, 75*time.Second, func() error {
		want, err := kernelLimitHits(id)
		if err != nil {
			return err
		}
		v, ok := e.value(t, "container_memory_limit_hits_total", id, nil)
		if !ok || v != float64(want) || want == 0 {
			return fmt.Errorf("container_memory_limit_hits_total of %.12s: %v (present %v), the kernel's %d", id, v, ok, want)
		}
		got = v
		return nil
	})
	return got
}

// A container that fills its page cache up to its limit, again and again,
// hits it without being killed; one whose worker needs more than its limit
// hits it, and the kill's record says so. cgroup v1 counts no stall: no
// such series.
func TestLimitHitsBeforeTheKill(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	// Docker's default limit of memory plus swap, above the memory limit:
	// a hit counts in memory.failcnt. (Where the two are equal, the hits
	// count in memory.memsw.failcnt, which Linux 6.18 leaves at 0.)
	flags := []string{"--memory-swap", "64m"}
	filler := run(t, flags, `for i in 1 2 3 4; do dd if=/dev/zero of=/tmp/fill bs=1M count=48 2>/dev/null; done; echo done; sleep 100000`)
	name := "hits-" + randomID(2)
	killed := run(t, flags, worker(name)+`; echo done; sleep 100000`)
	waitLog(t, filler, "done")
	waitLog(t, killed, "done")
	e.waitCounts(t, filler, counts{})
	e.waitCounts(t, killed, counts{OOMs: 1})
	e.waitLimitHits(t, filler)
	hits := e.waitLimitHits(t, killed)
	for _, id := range []string{filler, killed} {
		for _, name := range []string{"container_memory_high_hits_total", "container_memory_pressure_stalled_seconds_total"} {
			if v, ok := e.value(t, name, id, nil); ok {
				t.Errorf("%s of %.12s: %v on cgroup v1, which counts none", name, id, v)
			}
		}
	}

	var before *apiBefore
	eventually(t, 30*time.Second, func() error {
		ks, err := e.kills("container=docker://" + killed)
		if err != nil {
			return err
		}
		if len(ks) != 1 || ks[0].Before == nil {
			return fmt.Errorf("records of %.12s: %d, want 1 that says what came before it", killed, len(ks))
		}
		before = ks[0].Before
		return nil
	})
	if before.LimitHits == nil || *before.LimitHits == 0 || float64(*before.LimitHits) > hits ||
		before.StalledSeconds != nil || before.HighHits != nil {
		t.Errorf("before the kill: %+v; want limit hits, at most the container's %v, and no stall or high hits (cgroup v1)", before, hits)
	}
	from, err1 := time.Parse(time.RFC3339Nano, before.From)
	to, err2 := time.Parse(time.RFC3339Nano, before.To)
	if err1 != nil || err2 != nil || !from.Before(to) {
		t.Errorf("before the kill: from %q to %q", before.From, before.To)
	}
	t.Logf("before the kill: %s, %d limit hits; the container's %v", to.Sub(from).Round(time.Millisecond), *before.LimitHits, hits)
}
