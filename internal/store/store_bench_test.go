package store

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkApply applies a realistic mix of events (start, OOM kill, exit)
// to a store of 1,000 containers.
func BenchmarkApply(b *testing.B) {
	s := New(time.Minute)
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		m := Meta{Runtime: "docker", ID: fmt.Sprintf("%064x", i), Name: fmt.Sprint("c", i)}
		keys[i] = m.Key()
		s.Apply(Observed{Meta: m, State: State{StartedAt: t0, Running: true}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := keys[i%n]
		when := t0.Add(time.Duration(i) * time.Second)
		switch i % 3 {
		case 0:
			s.Apply(OOMKilled{Key: k, At: when})
		case 1:
			s.Apply(Exited{Key: k, At: when, Code: 137})
		default:
			s.Apply(Started{Key: k, At: when})
		}
	}
}

// BenchmarkMemoryPerContainer reports the heap the store keeps for each
// container it tracks (B/container), as on the bench's host of 10,000
// containers (docs/performance.md): kernel-only, a CRI-O cgroup that no
// source follows, read at the walk and again for its warnings (two sampled
// readings of its limit hits, as on cgroup v1); and a Docker container that
// the runtime reported and the kernel reader counts.
func BenchmarkMemoryPerContainer(b *testing.B) {
	const n = 10000
	parent := "/process_api/ad16a093e42d281d385715570279602e/mcm-harness-9fe1256c/"
	for _, kind := range []string{"kernel-only", "docker"} {
		b.Run(kind, func(b *testing.B) {
			// The kernel reader's strings (ids, paths) are its own: made
			// before the store is, so that the figure is the store's alone.
			cgs := make([]Cgroup, n)
			for i := range cgs {
				id := fmt.Sprintf("%064x", 0xab000000+i)
				cgs[i] = Cgroup{Meta: Meta{Runtime: RuntimeCRIO, ID: id}, Path: parent + "crio-" + id, Guessed: true}
				if kind == "docker" {
					cgs[i] = Cgroup{Meta: Meta{Runtime: RuntimeDocker, ID: id, Name: "c" + id[56:]}, Path: parent + id, ByPid: true}
				}
			}
			var perContainer float64
			for b.Loop() {
				before := heapInUse()
				s := New(time.Minute)
				s.AddSource(CgroupSource)
				for i, cg := range cgs {
					if kind == "docker" {
						s.Apply(Observed{Meta: cg.Meta, State: State{StartedAt: t0, Running: true, Pid: 1000 + i}})
					}
					for r := range 2 {
						s.Apply(KernelOOMCount{Cgroup: cg, Instance: uint64(i + 1), Born: t0, At: t0.Add(time.Duration(r) * 15 * time.Second),
							Pressure: MemoryPressure{HasLimitHits: true}, PressureSampled: true})
					}
				}
				perContainer = float64(heapInUse()-before) / n
				runtime.KeepAlive(s)
			}
			b.ReportMetric(perContainer, "B/container")
		})
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
