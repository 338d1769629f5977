package collector

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// BenchmarkScrape measures one whole scrape of /metrics — snapshot, const
// metrics, gathering, text encoding — for stores of 100 to 10,000
// Kubernetes containers, each exited once and OOM-killed once.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n, "_containers"), func(b *testing.B) {
			s := store.New(time.Minute)
			for i := range n {
				m := store.Meta{
					Runtime: "docker", ID: fmt.Sprintf("%064x", i), Name: "app", Container: "app",
					Pod: fmt.Sprintf("web-%d-7d9f8c6b5-x2x4q", i), Namespace: "shop",
					ImageID: "sha256:4638ae6d8c2c10ffccae52997484ddd1b123c0f508d2cebec10e3366be6832db",
				}
				s.Apply(store.Observed{Meta: m, State: store.State{StartedAt: t0, FinishedAt: t0, ExitCode: 1, Restarts: 3}})
				s.Apply(store.OOMKilled{Key: m.Key(), At: t0.Add(time.Second)})
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(New(s, Options{}))
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
			req := httptest.NewRequest("GET", "/metrics", nil)
			var written int64
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				written = int64(rec.Body.Len())
				_, _ = io.Copy(io.Discard, rec.Body)
			}
			b.ReportMetric(float64(written), "bytes/scrape")
		})
	}
}
