package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// BenchmarkScrape measures one whole scrape of /metrics through Handler —
// snapshot, labels, the exporter's own metrics with the Go and process
// collectors as main registers them, text, gzip if asked — for stores of 100
// to 10,000 Kubernetes containers, each exited once and OOM-killed once. The
// response goes to a writer that only counts it, so that B/op is the
// handler's own. bytes/scrape is the response's size as sent.
//
// With warnings, each container's cgroup also counts the warnings before a
// kill as cgroup v2 does (limit hits, high hits, PSI some and full): four
// series more a container.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		for _, encoding := range []string{"identity", "gzip"} {
			for _, warnings := range []bool{false, true} {
				name := fmt.Sprintf("%d_containers/%s", n, encoding)
				if warnings {
					name += "/warnings"
				}
				b.Run(name, func(b *testing.B) { benchScrape(b, benchStore(n, warnings), encoding) })
			}
		}
	}
}

// benchScrape measures scrapes of s after a first one.
func benchScrape(b *testing.B, s *store.Store, encoding string) {
	c := New(s, Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, versioncollector.NewCollector(Namespace),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := c.Handler(reg, HandlerOpts{MaxRequestsInFlight: 10})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", encoding)
	w := &countingWriter{header: http.Header{}}
	h.ServeHTTP(w, req) // the first scrape makes the labels
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		clear(w.header)
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n), "bytes/scrape")
}

// BenchmarkFirstScrape measures the first scrape of 10,000 containers, which
// escapes every container's labels.
func BenchmarkFirstScrape(b *testing.B) {
	s := benchStore(10000, false)
	reg := prometheus.NewRegistry()
	w := &countingWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if err := New(s, Options{}).WriteText(w, reg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerContainer reports what the collector keeps from scrape
// to scrape for each container (B/container): its labels, escaped, and their
// place in the order; for 10,000 Kubernetes containers (benchStore), and for
// 10,000 containers only the kernel knows, as on the bench's host (CRI-O
// cgroups that no source follows).
func BenchmarkMemoryPerContainer(b *testing.B) {
	const n = 10000
	for _, kind := range []string{"kubernetes", "kernel-only"} {
		b.Run(kind, func(b *testing.B) {
			s := benchStore(n, false)
			if kind == "kernel-only" {
				s = store.New(time.Minute)
				s.AddSource(store.CgroupSource)
				for i := range n {
					id := fmt.Sprintf("%064x", 0xab000000+i)
					s.Apply(store.KernelOOMCount{Cgroup: store.Cgroup{Meta: store.Meta{Runtime: store.RuntimeCRIO, ID: id},
						Path: "/kubepods/crio-" + id, Guessed: true}, Instance: uint64(i + 1), Born: t0, At: t0})
				}
			}
			reg := prometheus.NewRegistry()
			w := &countingWriter{header: http.Header{}}
			var perContainer float64
			for b.Loop() {
				before := heapInUse()
				c := New(s, Options{})
				for range 2 { // the second scrape drops what only the first needed
					if err := c.WriteText(w, reg, nil); err != nil {
						b.Fatal(err)
					}
				}
				perContainer = float64(heapInUse()-before) / n
				runtime.KeepAlive(c)
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

func benchStore(n int, warnings bool) *store.Store {
	s := store.New(time.Minute)
	for i := range n {
		m := store.Meta{
			Runtime: "docker", ID: fmt.Sprintf("%064x", i), Name: "app", KubeContainer: "app",
			Pod: fmt.Sprintf("web-%d-7d9f8c6b5-x2x4q", i), Namespace: "shop",
			ImageID: "sha256:4638ae6d8c2c10ffccae52997484ddd1b123c0f508d2cebec10e3366be6832db",
		}
		s.Apply(store.Observed{Meta: m, State: store.State{StartedAt: t0, FinishedAt: t0, ExitCode: 1, Restarts: 3}})
		s.Apply(store.OOMKilled{Key: m.Key(), At: t0.Add(time.Second)})
		if warnings {
			s.Apply(store.KernelOOMCount{Cgroup: cgroupOf(m), Instance: uint64(i + 1), Kills: 1, Born: t0, At: t0.Add(time.Second),
				Pressure: store.MemoryPressure{LimitHits: 1204, HasLimitHits: true, HighHits: 5, HasHighHits: true,
					Waiting: 3100 * time.Millisecond, Stalled: 2 * time.Second, HasStall: true}, PressureSampled: true})
		}
	}
	return s
}

// countingWriter is a ResponseWriter that counts what is written to it.
type countingWriter struct {
	header http.Header
	n      int
}

func (w *countingWriter) Header() http.Header         { return w.header }
func (w *countingWriter) WriteHeader(int)             {}
func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
