package pipe

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// BenchmarkQueueAtItsBound measures what the exporter holds for Kubernetes
// Events at worst: DefaultQueue kills waiting for a companion that is away,
// each with every field a kill of the kernel log fills. It reports the heap
// they take (bytes/queued-kill, and MiB for the whole queue), the figure
// the exporter's memory limit allows for beside its containers.
func BenchmarkQueueAtItsBound(b *testing.B) {
	main := false
	usage, limit := uint64(512<<20), uint64(512<<20)
	var perKill float64
	for b.Loop() {
		c := New(Options{Path: "/nonexistent"}, slog.New(slog.DiscardHandler))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range DefaultQueue {
			c.Send(Kill{Time: time.Now(), Namespace: "logging", Pod: fmt.Sprintf("fluentd-%d-7d9f8c6b5-x2x4q", i),
				PodUID: fmt.Sprintf("5f0c1a2e-7b9d-4c3e-8f1a-%012d", i), Container: "fluentd",
				ContainerID: fmt.Sprintf("containerd://%064x", i), Process: "ruby-worker", PID: 100000 + i, MainProcess: &main,
				Scope: "container", LimitCgroup: "/kubepods/burstable/pod5f0c1a2e/" + fmt.Sprintf("%064x", i),
				Usage: &usage, Limit: &limit, Trigger: "ruby-worker", TriggerPID: 100000 + i, From: "kernel log"})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perKill = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / DefaultQueue
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perKill, "bytes/queued-kill")
	b.ReportMetric(perKill*DefaultQueue/(1<<20), "queue-MiB")
}
