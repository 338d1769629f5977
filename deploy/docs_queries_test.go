package deploy_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// docsMetricsFile holds the example queries users copy.
const docsMetricsFile = "../docs/metrics.md"

// docQuery is a ```promql block of a doc, with the paragraph before it.
type docQuery struct{ intro, query string }

// docQueries returns the ```promql blocks of the doc at path.
func docQueries(t *testing.T, path string) []docQuery {
	t.Helper()
	var out []docQuery
	var para, last, block []string // last: the paragraph before a blank line
	in := false
	for _, line := range strings.Split(string(readFile(t, path)), "\n") {
		switch {
		case in && line == "```":
			out = append(out, docQuery{strings.Join(last, " "), strings.Join(block, "\n")})
			in, para, last, block = false, nil, nil, nil
		case in:
			block = append(block, line)
		case line == "```promql":
			in = true
		case strings.TrimSpace(line) == "":
			if para != nil {
				last, para = para, nil
			}
		default:
			para = append(para, line)
		}
	}
	return out
}

// docsSeries is a node's day as the exporter and kube-state-metrics export
// it, a sample each 30 minutes (docsStep) up to 24h, when the queries are
// evaluated; one series a line, in the notation of promtool's tests.
// A series of an outcome or a process appears with its first kill (_: no
// sample), as the exporter's do.
//   - web-7d9f8-x2x4q (Deployment web): its worker ruby killed at 24h, its
//     first kill; the container lived on.
//   - report-28f1x (a Job): its main process java killed at 24h: ended.
//   - web-7d9f8-k2m9z (Deployment web): ruby killed two days ago and at 12h,
//     lived on both times.
//   - cache-0 (StatefulSet cache): redis killed two days ago, lived on.
//
// The Docker source is down.
const docsSeries = `
  container_ooms_total{namespace="shop",pod="web-7d9f8-x2x4q",container="app",container_id="containerd://a1"} 0x47 1
  container_oom_kills_by_process_total{namespace="shop",pod="web-7d9f8-x2x4q",container="app",container_id="containerd://a1",process="ruby"} _x48 1
  container_oom_kills_by_outcome_total{namespace="shop",pod="web-7d9f8-x2x4q",container="app",container_id="containerd://a1",outcome="lived_on"} _x48 1
  container_ooms_total{namespace="batch",pod="report-28f1x",container="job",container_id="containerd://b1"} 0x47 1
  container_oom_kills_by_process_total{namespace="batch",pod="report-28f1x",container="job",container_id="containerd://b1",process="java"} _x48 1
  container_oom_kills_by_outcome_total{namespace="batch",pod="report-28f1x",container="job",container_id="containerd://b1",outcome="ended"} _x48 1
  container_ooms_total{namespace="shop",pod="web-7d9f8-k2m9z",container="app",container_id="containerd://c1"} 1x24 2x23
  container_oom_kills_by_process_total{namespace="shop",pod="web-7d9f8-k2m9z",container="app",container_id="containerd://c1",process="ruby"} 1x24 2x23
  container_oom_kills_by_outcome_total{namespace="shop",pod="web-7d9f8-k2m9z",container="app",container_id="containerd://c1",outcome="lived_on"} 1x24 2x23
  container_ooms_total{namespace="shop",pod="cache-0",container="redis",container_id="containerd://d1"} 1x48
  container_oom_kills_by_process_total{namespace="shop",pod="cache-0",container="redis",container_id="containerd://d1",process="redis-server"} 1x48
  container_oom_kills_by_outcome_total{namespace="shop",pod="cache-0",container="redis",container_id="containerd://d1",outcome="lived_on"} 1x48
  missing_container_metrics_source_up{runtime="docker"} 0x48
  missing_container_metrics_source_up{runtime="containerd"} 1x48
  kube_pod_owner{namespace="shop",pod="web-7d9f8-x2x4q",owner_kind="ReplicaSet",owner_name="web-7d9f8",owner_is_controller="true"} 1x48
  kube_pod_owner{namespace="shop",pod="web-7d9f8-k2m9z",owner_kind="ReplicaSet",owner_name="web-7d9f8",owner_is_controller="true"} 1x48
  kube_pod_owner{namespace="batch",pod="report-28f1x",owner_kind="Job",owner_name="report",owner_is_controller="true"} 1x48
  kube_pod_owner{namespace="shop",pod="cache-0",owner_kind="StatefulSet",owner_name="cache",owner_is_controller="true"} 1x48
  kube_replicaset_owner{namespace="shop",replicaset="web-7d9f8",owner_kind="Deployment",owner_name="web",owner_is_controller="true"} 1x48
  kube_pod_info{namespace="shop",pod="web-7d9f8-x2x4q",node="n1",created_by_kind="ReplicaSet",created_by_name="web-7d9f8",uid="u1"} 1x48
  kube_pod_info{namespace="shop",pod="web-7d9f8-k2m9z",node="n2",created_by_kind="ReplicaSet",created_by_name="web-7d9f8",uid="u3"} 1x48
  kube_pod_info{namespace="batch",pod="report-28f1x",node="n2",created_by_kind="Job",created_by_name="report",uid="u2"} 1x48
  kube_pod_info{namespace="shop",pod="cache-0",node="n1",created_by_kind="StatefulSet",created_by_name="cache",uid="u4"} 1x48
  kube_pod_container_info{namespace="shop",pod="web-7d9f8-x2x4q",container="app",container_id="containerd://a1",image="shop/web:3"} 1x48
  kube_pod_container_info{namespace="batch",pod="report-28f1x",container="job",container_id="containerd://b1",image="batch/report:1"} 1x48
  kube_pod_container_resource_limits{namespace="shop",pod="web-7d9f8-x2x4q",container="app",resource="memory",unit="byte"} 268435456x48
  kube_pod_container_resource_limits{namespace="batch",pod="report-28f1x",container="job",resource="memory",unit="byte"} 536870912x48
  kube_pod_container_resource_limits{namespace="shop",pod="web-7d9f8-k2m9z",container="app",resource="memory",unit="byte"} 268435456x48
`

// Every query of docs/metrics.md finds, in a day of a node, what its text
// says it finds, and nothing else: each answer's series by the labels that
// tell them apart.
func TestDocsQueries(t *testing.T) {
	podA, podB, podC := "shop/web-7d9f8-x2x4q/app", "batch/report-28f1x/job", "shop/web-7d9f8-k2m9z/app"
	cont := []string{"namespace", "pod", "container"}
	want := map[string]struct {
		labels []string
		series []string
	}{
		// The start of the text before the query: what the query is for.
		"Which processes the OOM killer takes":              {append(cont, "process"), []string{podA + "/ruby", podB + "/java", podC + "/ruby"}},
		"OOM kills in the last hour, by pod and container":  {cont, []string{podA, podB}},
		"The kill that no restart and no exit code reveals": {cont, []string{podA, podC}},
		"Join with kube-state-metrics' container info":      {append(cont, "image"), []string{podA + "/shop/web:3", podB + "/batch/report:1"}},
		"A runtime the exporter cannot reach":               {[]string{"runtime"}, []string{"docker"}},
		"OOM kills in the last hour with the pod's node":    {append(cont, "node", "created_by_kind", "created_by_name"), []string{podA + "/n1/ReplicaSet/web-7d9f8", podB + "/n2/Job/report"}},
		"OOM kills in the last day by Deployment":           {[]string{"namespace", "deployment"}, []string{"shop/web"}},
		"The memory limit of each container":                {cont, []string{podA, podB}},
	}
	for _, w := range want {
		slices.Sort(w.series)
	}
	storage := loadSeries(t, docsSeries, docsStep)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	at := time.Unix(0, 0).Add(24 * time.Hour)
	tested := map[string]bool{}
	for _, q := range docQueries(t, docsMetricsFile) {
		var key string
		for k := range want {
			if strings.HasPrefix(q.intro, k) {
				key = k
			}
		}
		if key == "" {
			t.Errorf("%s: a query this test does not know (add what it should find): %q\n%s", docsMetricsFile, q.intro, q.query)
			continue
		}
		tested[key] = true
		query, err := engine.NewInstantQuery(context.Background(), storage, nil, q.query, at)
		if err != nil {
			t.Errorf("%q: %v\n%s", key, err, q.query)
			continue
		}
		res := query.Exec(context.Background())
		vec, err := res.Vector()
		if err != nil {
			t.Errorf("%q: %v\n%s", key, err, q.query)
			continue
		}
		var got []string
		for _, s := range vec {
			var vs []string
			for _, l := range want[key].labels {
				vs = append(vs, s.Metric.Get(l))
			}
			got = append(got, strings.Join(vs, "/"))
		}
		slices.Sort(got)
		if !slices.Equal(got, want[key].series) {
			t.Errorf("%q finds %v, want %v\n%s\n%v", key, got, want[key].series, q.query, vec)
		}
		query.Close()
	}
	for k := range want {
		if !tested[k] {
			t.Errorf("%s has no query after %q", docsMetricsFile, k)
		}
	}
}

const docsStep = 30 * time.Minute

// loadSeries is an in-memory storage of series, one a line as promtool's
// tests write them ("name{labels} 0x47 1"), each value step after the last
// from time 0.
func loadSeries(t *testing.T, text string, step time.Duration) storage.Queryable {
	t.Helper()
	var all []storage.Series
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		lset, values, err := promqlParser.ParseSeriesDesc(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var ts []int64
		var vs []float64
		for i, v := range values {
			if !v.Omitted {
				ts, vs = append(ts, int64(i)*step.Milliseconds()), append(vs, v.Value)
			}
		}
		samples, err := storage.ExpandSamples(chunkenc.MockSeriesIterator(nil, ts, vs), nil)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, storage.NewListSeries(lset, samples))
	}
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			set := &seriesList{}
			for _, s := range all {
				if matchAll(s.Labels(), ms) {
					set.series = append(set.series, s)
				}
			}
			slices.SortFunc(set.series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
			return set
		},
	}}
}

func matchAll(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// seriesList is a storage.SeriesSet of series in memory, sorted.
type seriesList struct {
	series []storage.Series
	i      int
}

func (s *seriesList) Next() bool {
	s.i++
	return s.i <= len(s.series)
}
func (s *seriesList) At() storage.Series              { return s.series[s.i-1] }
func (*seriesList) Err() error                        { return nil }
func (*seriesList) Warnings() annotations.Annotations { return nil }
