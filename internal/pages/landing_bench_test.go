package pages

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// BenchmarkLandingWhileKillsArrive measures / with 10,000 containers while
// kills arrive, through the limit main puts on the pages (10 in flight):
// its time per request with 0, 1, 10 and 20 clients asking without pause
// (beyond 10, the limit refuses: refused/page), and what the clients cost
// the kills, which take the same store lock that / holds while it walks
// every container: how long one kill's Apply takes (p50, p99, max), a kill
// every millisecond. The responses go to a writer that only counts them.
func BenchmarkLandingWhileKillsArrive(b *testing.B) {
	const containers = 10000
	st := store.New(time.Hour)
	st.SetKillsKept(1000)
	keys := make([]string, containers)
	t0 := time.Now().Add(-time.Hour)
	for i := range containers {
		m := store.Meta{Runtime: "containerd", ContainerdNamespace: "k8s.io", ID: fmt.Sprintf("%064x", i), Name: "app",
			KubeContainer: "app", Pod: fmt.Sprintf("web-%d-7d9f8c6b5-x2x4q", i), Namespace: "shop", PodUID: fmt.Sprintf("uid-%d", i)}
		st.Apply(store.Observed{Meta: m, State: store.State{Running: true, StartedAt: t0}})
		keys[i] = m.Key()
	}
	st.AddSource("containerd")
	st.SetUp("containerd", true, nil)
	h := Limit(10)(Landing(st, site))
	for _, clients := range []int{0, 1, 10, 20} {
		b.Run(fmt.Sprintf("%d_clients", clients), func(b *testing.B) {
			var mu sync.Mutex
			var applies []time.Duration
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					start := time.Now()
					st.Apply(store.OOMKilled{Key: keys[i%containers], At: start})
					d := time.Since(start)
					mu.Lock()
					applies = append(applies, d)
					mu.Unlock()
				}
			}()
			switch clients {
			case 0: // the kills alone, for as long as a page would take
				for b.Loop() {
					time.Sleep(time.Millisecond)
				}
			case 1:
				w := &countingWriter{header: http.Header{}}
				req := httptest.NewRequest("GET", "/", nil)
				for b.Loop() {
					h.ServeHTTP(w, req)
				}
				b.ReportMetric(float64(w.n)/float64(b.N), "bytes/page")
			default:
				// RunParallel runs parallelism × GOMAXPROCS clients.
				b.SetParallelism(max(clients/runtime.GOMAXPROCS(0), 1))
				var n, refused int
				b.RunParallel(func(pb *testing.PB) {
					w := &countingWriter{header: http.Header{}}
					req := httptest.NewRequest("GET", "/", nil)
					r := 0
					for pb.Next() {
						w.code = http.StatusOK
						h.ServeHTTP(w, req)
						if w.code != http.StatusOK {
							r++
						}
					}
					mu.Lock()
					n, refused = n+w.n, refused+r
					mu.Unlock()
				})
				b.ReportMetric(float64(n)/float64(b.N), "bytes/page")
				b.ReportMetric(float64(refused)/float64(b.N), "refused/page")
			}
			close(stop)
			<-done
			slices.Sort(applies)
			if len(applies) == 0 {
				return
			}
			pct := func(p float64) float64 {
				return float64(applies[min(int(p*float64(len(applies))), len(applies)-1)].Microseconds())
			}
			b.ReportMetric(pct(0.5), "kill-p50-µs")
			b.ReportMetric(pct(0.99), "kill-p99-µs")
			b.ReportMetric(float64(applies[len(applies)-1].Microseconds()), "kill-max-µs")
		})
	}
}

// countingWriter is a ResponseWriter that counts what is written to it,
// and keeps the status.
type countingWriter struct {
	header http.Header
	n      int
	code   int
}

func (c *countingWriter) Header() http.Header  { return c.header }
func (c *countingWriter) WriteHeader(code int) { c.code = code }
func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}
