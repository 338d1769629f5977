package main

import (
	"bufio"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/missing-container-metrics/missing-container-metrics/internal/collector"
	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
	"github.com/missing-container-metrics/missing-container-metrics/internal/pages"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// docsMetrics reads docs/metrics.md: the metrics of its "| metric |" tables
// (rows of type "label" are labels), and the earlier tool's names, this
// exporter's name to the earlier one, from the table under "The earlier
// tool's names".
func docsMetrics(t *testing.T) (documented []string, legacy map[string]string) {
	t.Helper()
	f, err := os.Open("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := regexp.MustCompile("`([a-z_:]+)`")
	legacy = map[string]string{}
	var inMetrics, inLegacy bool
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20) // a row of the tables is one long line
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			inMetrics = false
			inLegacy = strings.Contains(line, "The earlier tool's names")
			continue
		case !strings.HasPrefix(line, "|"):
			inMetrics = false
			continue
		case strings.HasPrefix(line, "| metric |"):
			inMetrics = true
			continue
		case strings.HasPrefix(line, "|---"):
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		switch {
		case inMetrics && strings.TrimSpace(cells[2]) != "label":
			for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
				documented = append(documented, m[1])
			}
		case inLegacy:
			now, before := name.FindStringSubmatch(cells[1]), name.FindStringSubmatch(cells[2])
			if now != nil && before != nil {
				legacy[now[1]] = before[1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(documented) == 0 || len(legacy) == 0 {
		t.Fatalf("docs/metrics.md: no metric tables found (documented %v, legacy %v): has its layout changed?", documented, legacy)
	}
	return documented, legacy
}

// described is the names of the metrics c describes.
func described(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []string
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		out = append(out, m[1])
	}
	return out
}

// served is the names of the families the exporter's /metrics answers
// with, for an empty store: the registry's metrics that always have a value
// (build_info, the limit), besides client_golang's standard ones.
func served(t *testing.T) []string {
	t.Helper()
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	// With Kubernetes Events on, for their metrics too (a companion that
	// is never started).
	events := pipe.New(pipe.Options{Path: "/nonexistent/missing-container-metrics-events"}, promslog.NewNopLogger())
	routes(cfg, pages.Site{}, store.New(time.Minute), events, promslog.NewNopLogger()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	var out []string
	for line := range strings.Lines(rec.Body.String()) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	return out
}

// Every metric docs/metrics.md lists is one the exporter describes or
// serves, and the reverse (as kube-state-metrics' doccheck does): a metric
// added, renamed or removed in the code without the docs fails here, in the
// plain `go test` that scripts/test.sh and make unit run.
func TestDocsListEveryMetric(t *testing.T) {
	documented, legacy := docsMetrics(t)
	inCode := described(t, collector.New(store.New(time.Minute), collector.Options{}))
	for _, n := range served(t) {
		// client_golang's standard metrics: the docs name them as a whole.
		if !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") && !slices.Contains(inCode, n) {
			inCode = append(inCode, n)
		}
	}
	for _, n := range documented {
		if !slices.Contains(inCode, n) {
			t.Errorf("docs/metrics.md lists %s, which the exporter does not export", n)
		}
	}
	for _, n := range inCode {
		if !slices.Contains(documented, n) {
			t.Errorf("the exporter exports %s, which docs/metrics.md does not list", n)
		}
	}

	// With --compat.legacy-metric-names, the names the docs' table gives
	// replace this exporter's; every other name stays.
	inLegacy := described(t, collector.New(store.New(time.Minute), collector.Options{LegacyNames: true}))
	for _, n := range described(t, collector.New(store.New(time.Minute), collector.Options{})) {
		want := n
		if old, ok := legacy[n]; ok {
			want = old
		}
		if !slices.Contains(inLegacy, want) {
			t.Errorf("with --compat.legacy-metric-names, %s should be %s (docs/metrics.md), but %s is not exported", n, want, want)
		}
	}
	for now := range legacy {
		if !slices.Contains(inCode, now) {
			t.Errorf("docs/metrics.md gives an earlier name for %s, which the exporter does not export", now)
		}
	}
}
