package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// churnContainers is how many containers the load test runs through their
// whole life; MCM_TEST_CHURN changes it.
func churnContainers(t *testing.T) int {
	n := 200
	if s := os.Getenv("MCM_TEST_CHURN"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("MCM_TEST_CHURN=%q", s)
		}
		n = v
	}
	return n
}

// Hundreds of containers are created, started, OOM-killed or exited, and
// removed in a burst, while scrapes run concurrently. The exporter keeps up:
// every container's exit code and OOM kill is exported exactly, counters
// never go down in any scrape, and once the retention has passed, the
// series are gone again.
func TestChurn(t *testing.T) {
	t.Parallel()
	n := churnContainers(t)
	const retention = 40 * time.Second
	// The profiler only to force a garbage collection before the heap is read.
	e := startExporter(t, "--retention="+retention.String(), "--web.enable-pprof")
	heapBefore := heapInUse(t, e)

	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapeErr := make(chan error, 4)
	for range 2 {
		scrapes.Add(1)
		go func() {
			defer scrapes.Done()
			scrapeErr <- monotonicScrapes(e, stop)
		}()
	}

	// Each worker runs containers through their whole life and checks,
	// within the retention, that the exporter shows exactly their exit code
	// and OOM kill.
	var (
		churned sync.WaitGroup
		mu      sync.Mutex
		ids     []string
	)
	work := make(chan int)
	started := time.Now()
	for range 8 {
		churned.Add(1)
		go func() {
			defer churned.Done()
			for i := range work {
				id, err := churnOne(e, i)
				if err != nil {
					t.Errorf("container %d: %v", i, err)
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	churned.Wait()
	took := time.Since(started)
	heapPeak := heapInUse(t, e)
	close(stop)
	scrapes.Wait()
	close(scrapeErr)
	for err := range scrapeErr {
		if err != nil {
			t.Error(err)
		}
	}
	// And gone after the retention: memory does not grow with churn.
	eventually(t, 2*retention, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		left := 0
		for _, id := range ids {
			if _, ok := s.containerCounts(id); ok {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d of the %d churned containers still exported", left, len(ids))
		}
		return nil
	})
	heapAfter := heapInUse(t, e)
	t.Logf("%d containers churned in %s (%.1f containers/s); live Go heap %.1f MiB before, %.1f after the churn, %.1f after the retention (race-detector build)",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), heapBefore/(1<<20), heapPeak/(1<<20), heapAfter/(1<<20))
	// What the churned containers held is given back: the live heap is
	// back near where it was, not where the churn took it. (A bound with
	// room for the collector's label cache and the runtime's own noise.)
	if limit := heapBefore + max((heapPeak-heapBefore)/2, 1<<20); heapAfter > limit {
		t.Errorf("live heap %.1f MiB after the retention, %.1f before the churn and %.1f after it: the churned containers' memory is kept",
			heapAfter/(1<<20), heapBefore/(1<<20), heapPeak/(1<<20))
	}
}

// heapInUse is the exporter's go_memstats_heap_alloc_bytes right after a
// garbage collection (forced through the profiler): its live heap.
func heapInUse(t *testing.T, e *exporter) float64 {
	t.Helper()
	for range 2 { // twice: sync.Pool keeps its objects through one collection
		resp, err := http.Get("http://" + e.addr + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := s.series("go_memstats_heap_alloc_bytes", nil)
	return v
}

// churnOne runs container i through its life: every tenth is OOM-killed,
// the others exit with i%100. Then it is removed, and the exporter must
// show exactly that within the retention.
func churnOne(e *exporter, i int) (string, error) {
	want := counts{Exited: true, ExitCode: float64(i % 100)}
	script := fmt.Sprintf("exit %d", i%100)
	if i%10 == 0 {
		want = counts{OOMs: 1, Exited: true, ExitCode: 137}
		script = "exec " + oomOnce
	}
	id, err := dockerErr("run", "-d", "--network", "none", "--cgroup-parent", env.cgroupParent,
		"--memory", "32m", "--memory-swap", "32m", env.image, "sh", "-c", script)
	if err != nil {
		return "", err
	}
	if _, err := dockerErr("wait", id); err != nil {
		return id, err
	}
	if _, err := dockerErr("rm", id); err != nil {
		return id, err
	}
	return id, e.countsAre("docker://"+id, want)
}

// monotonicScrapes scrapes until stop, and reports a counter of a container
// that went down between two scrapes.
func monotonicScrapes(e *exporter, stop <-chan struct{}) error {
	last := map[string]float64{}
	for n := 0; ; n++ {
		select {
		case <-stop:
			if n < 2 {
				return fmt.Errorf("only %d scrapes during the churn", n)
			}
			return nil
		default:
		}
		s, err := e.scrape()
		if err != nil {
			return err
		}
		for _, fam := range []string{"container_ooms_total", "container_restarts_total"} {
			for _, m := range s.Families[fam].GetMetric() {
				var id string
				for _, l := range m.GetLabel() {
					if l.GetName() == "container_id" {
						id = l.GetValue()
					}
				}
				k, v := fam+" "+id, m.GetCounter().GetValue()
				if prev, ok := last[k]; ok && v < prev {
					return fmt.Errorf("%s went down from %v to %v", k, prev, v)
				}
				last[k] = v
			}
		}
	}
}
