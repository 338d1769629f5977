package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The dashboard (deploy/grafana) against a real Prometheus that holds two
// OOM kills: a worker's, after which its container lived on, and a main
// process's, after which the kubelet restarted its container as a new one.
// Each panel's queries, sent as Grafana sends them over the test's time
// range, show each kill where the panel is about it and nowhere else; the
// OOM kills annotation marks both at their times; and the recent kills'
// link leads to the exporter's record of each. cAdvisor's memory series come
// from the node's kubelet.
func TestDashboard(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	p := startPrometheus(t, e.ns, cadvisorJob(t))
	ns := newNamespace(t, "dashboard")
	rec := newRecords(t)
	from := time.Now().Add(-time.Minute).Truncate(time.Second)

	// The worker is killed at once: its container's series may be first
	// scraped with the kill already in it, as a kill at a container's start is.
	createPod(t, ns, newPod("fluentd", rec, corev1.RestartPolicyAlways,
		container("fluentd", oomKill("fluentd-worker")+`; [ $? = 137 ] && echo oom >> /rec/ooms; exec sleep 100000`)))
	// The main process is killed once Prometheus has scraped its container
	// (a restart before that is one the dashboard cannot know of); its
	// second run sleeps.
	createPod(t, ns, newPod("hog", rec, corev1.RestartPolicyAlways,
		container("hog", `if [ -e /rec/hog-ran ]; then exec sleep 100000; fi; until [ -e /rec/hog-go ]; do sleep 0.2; done; `+
			`touch /rec/hog-ran; exec dd if=/dev/zero of=/dev/null bs=64M count=1`)))
	eventually(t, 2*time.Minute, func() error {
		var v promVector
		if err := p.api("/api/v1/query?query="+url.QueryEscape(fmt.Sprintf(`container_ooms_total{namespace=%q, pod="hog"}`, ns)), &v); err != nil {
			return err
		}
		if len(v.Result) == 0 {
			return fmt.Errorf("prometheus has no series of pod hog yet")
		}
		return nil
	})
	rec.touch(t, "hog-go")
	rec.waitLines(t, 2*time.Minute, "ooms", "oom", 1)
	worker := status(waitSettled(t, ns, "fluentd", "fluentd", 0), "fluentd").ContainerID
	hog := status(waitSettled(t, ns, "hog", "hog", 1), "hog")
	if hog.LastTerminationState.Terminated == nil || hog.LastTerminationState.Terminated.Reason != "OOMKilled" {
		t.Fatalf("the kubelet's last state of hog: %+v, want OOMKilled", hog.LastTerminationState)
	}
	hogKilled := hog.LastTerminationState.Terminated.ContainerID
	e.until(t, time.Minute, func(s *scrape) error {
		if err := wantCounts(s, worker, 1, 0, -1); err != nil {
			return err
		}
		if err := wantCounts(s, hogKilled, 1, 0, 137); err != nil {
			return err
		}
		return wantCounts(s, hog.ContainerID, 0, 1, -1)
	})

	d := readGrafanaDashboard(t)
	// The kills' series must be in Prometheus before the panels can show
	// them, and cAdvisor's too: every panel is checked again until all agree.
	var last []string
	err := waitFor(3*time.Minute, func() error {
		to := time.Now()
		q := dashboardQuery{p: p, ns: ns, from: from, to: to}
		last = nil
		for _, pn := range d.panels() {
			if pn.Type == "row" {
				continue
			}
			check, ok := panelWants[pn.Title]
			if !ok {
				last = append(last, fmt.Sprintf("panel %q: the test does not know what it should show: add it to panelWants", pn.Title))
				continue
			}
			results := map[string]promResult{}
			for _, tg := range pn.Targets {
				r, err := q.run(tg.Expr, tg.Instant)
				if err != nil {
					last = append(last, fmt.Sprintf("panel %q target %s: %v", pn.Title, tg.RefID, err))
					continue
				}
				results[tg.RefID] = r
			}
			if err := check(q, pn, results); err != nil {
				last = append(last, fmt.Sprintf("panel %q: %v", pn.Title, err))
			}
		}
		if err := checkKillAnnotations(q, d); err != nil {
			last = append(last, err.Error())
		}
		if len(last) > 0 {
			return fmt.Errorf("%d panels do not show what they should yet", len(last))
		}
		return nil
	})
	if err != nil {
		var targets struct {
			ActiveTargets []struct {
				ScrapeURL, Health, LastError string
			}
		}
		_ = p.api("/api/v1/targets", &targets)
		var cadvisor promVector
		_ = p.api("/api/v1/query?query="+url.QueryEscape(`topk(8, container_memory_working_set_bytes)`), &cadvisor)
		t.Fatalf("%v:\n%s\ntargets: %+v\ncAdvisor's largest working sets: %+v", err, strings.Join(last, "\n"), targets.ActiveTargets, cadvisor.Result)
	}
}

// cadvisorJob scrapes the kubelet's cAdvisor (/metrics/cadvisor) at its
// port, as kube-prometheus does, with the client certificate the apiserver
// uses for the kubelet. (The apiserver's node proxy refuses this node's
// loopback address.)
func cadvisorJob(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(env.node.KubeletDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Port int }
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Port == 0 {
		t.Fatalf("the kubelet's port in its config.json: %v", err)
	}
	pki := filepath.Dir(env.node.CAFile)
	return fmt.Sprintf(`  - job_name: cadvisor
    scheme: https
    tls_config: {ca_file: %s, cert_file: %s, key_file: %s}
    metrics_path: /metrics/cadvisor
    static_configs: [{targets: ["127.0.0.1:%d"]}]
`, env.node.CAFile, filepath.Join(pki, "client.crt"), filepath.Join(pki, "client.key"), cfg.Port)
}

// grafanaDashboard is what the test reads of the dashboard.
type grafanaDashboard struct {
	Panels      []grafanaPanel `json:"panels"`
	Annotations struct {
		List []struct {
			Name            string `json:"name"`
			Expr            string `json:"expr"`
			Step            string `json:"step"`
			UseValueForTime bool   `json:"useValueForTime"`
		} `json:"list"`
	} `json:"annotations"`
}

type grafanaPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID   string `json:"refId"`
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
	FieldConfig struct {
		Overrides []struct {
			Properties []struct {
				ID    string          `json:"id"`
				Value json.RawMessage `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

func readGrafanaDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/missing-container-metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d grafanaDashboard) panels() []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// links are the URLs of the panel's data links.
func (p grafanaPanel) links() []string {
	var out []string
	for _, o := range p.FieldConfig.Overrides {
		for _, pr := range o.Properties {
			if pr.ID != "links" {
				continue
			}
			var ls []struct{ URL string }
			if json.Unmarshal(pr.Value, &ls) == nil {
				for _, l := range ls {
					out = append(out, l.URL)
				}
			}
		}
	}
	return out
}

// dashboardQuery sends a panel's query as Grafana does, with the dashboard's
// variables set: every job, the test's namespace, the time range from..to,
// an interval of 2 s (the scrape interval) and a rate interval of 4 scrapes.
type dashboardQuery struct {
	p        *prometheusServer
	ns       string
	from, to time.Time
}

const (
	dashboardStep         = 2 * time.Second
	dashboardRateInterval = 8 * time.Second
)

var (
	grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)
	// dataField is a data link's ${__data.fields.NAME}: the row's field NAME.
	dataField = regexp.MustCompile(`\$\{__data\.fields\.(\w+)\}`)
)

func (q dashboardQuery) expand(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "job":
			return ".+"
		case "namespace":
			return regexp.QuoteMeta(q.ns)
		case "__range":
			return fmt.Sprintf("%ds", int(q.to.Sub(q.from).Seconds()))
		case "__interval":
			return fmt.Sprintf("%ds", int(dashboardStep.Seconds()))
		case "__rate_interval":
			return fmt.Sprintf("%ds", int(dashboardRateInterval.Seconds()))
		}
		return v
	})
}

type promSeries struct {
	Metric map[string]string
	Values [][2]any // [unix seconds, "value"]
}

// promResult is a query's series, an instant query's as one value each.
type promResult []promSeries

type promVector struct {
	Result []struct {
		Metric map[string]string
		Value  [2]any
	}
}

func (q dashboardQuery) run(expr string, instant bool) (promResult, error) {
	return q.runStep(expr, instant, dashboardStep)
}

func (q dashboardQuery) runStep(expr string, instant bool, step time.Duration) (promResult, error) {
	v := url.Values{"query": {q.expand(expr)}}
	if instant {
		v.Set("time", strconv.FormatInt(q.to.Unix(), 10))
		var data promVector
		if err := q.p.api("/api/v1/query?"+v.Encode(), &data); err != nil {
			return nil, err
		}
		var out promResult
		for _, r := range data.Result {
			out = append(out, promSeries{Metric: r.Metric, Values: [][2]any{r.Value}})
		}
		return out, nil
	}
	v.Set("start", strconv.FormatInt(q.from.Unix(), 10))
	v.Set("end", strconv.FormatInt(q.to.Unix(), 10))
	v.Set("step", strconv.Itoa(int(step.Seconds())))
	var data struct{ Result promResult }
	err := q.p.api("/api/v1/query_range?"+v.Encode(), &data)
	return data.Result, err
}

// values are a series' values, as numbers.
func (s promSeries) values() []float64 {
	var out []float64
	for _, v := range s.Values {
		str, _ := v[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err == nil {
			out = append(out, f)
		}
	}
	return out
}

// shown is each series' most, by the label given, for the series above 0.
func (r promResult) shown(label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range r {
		for _, v := range s.values() {
			if v > 0 && v > out[s.Metric[label]] {
				out[s.Metric[label]] = v
			}
		}
	}
	return out
}

// single is the one value of a stat's query.
func (r promResult) single() (float64, error) {
	if len(r) != 1 || len(r[0].values()) != 1 {
		return 0, fmt.Errorf("%d series, want one value: %v", len(r), r)
	}
	return r[0].values()[0], nil
}

// panelCheck says how a panel's results differ from what it should show.
type panelCheck func(q dashboardQuery, p grafanaPanel, results map[string]promResult) error

// stat: the panel's one value, rounded as the panel shows it.
func stat(want float64) panelCheck {
	return func(_ dashboardQuery, _ grafanaPanel, rs map[string]promResult) error {
		v, err := rs["A"].single()
		if err != nil {
			return err
		}
		if math.Round(v) != want {
			return fmt.Errorf("shows %v, want %v", v, want)
		}
		return nil
	}
}

// showsOnly: the series of query A above 0 by label are exactly want
// (values rounded; a value of 0 in want: any above 0, as a rate is).
func showsOnly(label string, want map[string]float64) panelCheck {
	return queryShowsOnly("A", label, want)
}

// queryShowsOnly is showsOnly of the panel's query ref.
func queryShowsOnly(ref, label string, want map[string]float64) panelCheck {
	return func(_ dashboardQuery, _ grafanaPanel, rs map[string]promResult) error {
		got := rs[ref].shown(label)
		for k, w := range want {
			g, ok := got[k]
			if !ok || (w != 0 && math.Round(g) != w) {
				return fmt.Errorf("query %s, %s=%q: %v (shown: %v), want %v", ref, label, k, g, got, w)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				return fmt.Errorf("query %s shows %s=%q, which it should not (shown: %v)", ref, label, k, got)
			}
		}
		return nil
	}
}

// anySeries: the exporter's own health panels show something.
func anySeries(_ dashboardQuery, p grafanaPanel, rs map[string]promResult) error {
	for _, tg := range p.Targets {
		if len(rs[tg.RefID]) > 0 {
			return nil
		}
	}
	return fmt.Errorf("no series")
}

// panelWants is what each panel shows of the two kills (pods fluentd and
// hog, in the test's namespace). A panel the test does not know fails it.
var panelWants = map[string]panelCheck{
	"OOM kills": stat(2),
	"Containers that lived on after an OOM kill": stat(1),
	"Restarts":      stat(1),
	"Runtimes down": stat(0),
	"OOM kills by namespace": func(q dashboardQuery, p grafanaPanel, rs map[string]promResult) error {
		return showsOnly("namespace", map[string]float64{q.ns: 0})(q, p, rs)
	},
	"OOM kills by pod and container":             showsOnly("pod", map[string]float64{"fluentd": 0, "hog": 0}),
	"OOM kills the containers lived on after":    showsOnly("pod", map[string]float64{"fluentd": 1}),
	"OOM kills by process":                       showsOnly("process", map[string]float64{"fluentd-worker": 0, "dd": 0}),
	"Killed processes":                           showsOnly("process", map[string]float64{"fluentd-worker": 1, "dd": 1}),
	"Recent OOM kills: what was killed, and why": checkRecentKills,
	"Memory in use (cAdvisor's working set)":     showsOnly("pod", map[string]float64{"fluentd": 0, "hog": 0}),
	// Each pod hit its pod's limit (the kernel's report says scope pod),
	// which is its container's, and which the pod's cgroup reaches first,
	// as it also holds the sandbox's pause process: the pods' hits (B)
	// show both, the containers' own (A) neither.
	"Memory limit hits": func(q dashboardQuery, p grafanaPanel, rs map[string]promResult) error {
		if err := queryShowsOnly("A", "pod", map[string]float64{})(q, p, rs); err != nil {
			return err
		}
		return queryShowsOnly("B", "pod", map[string]float64{"fluentd": 0, "hog": 0})(q, p, rs)
	},
	// cgroup v2's PSI: this node's memory controller is v1.
	"Memory stall (cgroup v2)":          showsOnly("pod", map[string]float64{}),
	"Restarts by pod and container":     showsOnly("pod", map[string]float64{"hog": 0}),
	"Last exit code, where not 0":       showsOnly("pod", map[string]float64{"hog": 137}),
	"Runtime connections":               anySeries,
	"Runtime events":                    anySeries,
	"Containers tracked and reconnects": anySeries,
	"Exporter versions":                 anySeries,
}

// checkRecentKills: a row for each container killed (one kill each), the
// newest kill's time in the range, and the row's link opens the exporter's
// record of the kill, naming the victim.
func checkRecentKills(q dashboardQuery, p grafanaPanel, rs map[string]promResult) error {
	if err := showsOnly("pod", map[string]float64{"fluentd": 1, "hog": 1})(q, p, rs); err != nil {
		return fmt.Errorf("kills: %w", err)
	}
	victims := map[string]string{"fluentd": "fluentd-worker", "hog": "dd"}
	if len(rs["B"]) != 2 {
		return fmt.Errorf("newest kills: %d rows, want 2: %v", len(rs["B"]), rs["B"])
	}
	links := p.links()
	if len(links) != 1 {
		return fmt.Errorf("%d links, want one to /kills", len(links))
	}
	for _, s := range rs["B"] {
		vs := s.values()
		if len(vs) != 1 {
			return fmt.Errorf("newest kill of %v: %v", s.Metric, vs)
		}
		at := time.UnixMilli(int64(vs[0]))
		if at.Before(q.from) || at.After(q.to) {
			return fmt.Errorf("newest kill of pod %s at %s, outside the range %s to %s", s.Metric["pod"], at, q.from, q.to)
		}
		link := dataField.ReplaceAllStringFunc(links[0], func(v string) string {
			return s.Metric[dataField.FindStringSubmatch(v)[1]]
		})
		code, body, err := fetch(context.Background(), link, "", "", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("link %s: %d %v", link, code, err)
		}
		if victim := victims[s.Metric["pod"]]; !strings.Contains(string(body), victim) {
			return fmt.Errorf("link %s: the page does not name the victim %s", link, victim)
		}
	}
	return nil
}

// checkKillAnnotations: the OOM kills annotation, queried as Grafana does
// (its step; the value as the time), marks each kill at a time in the range,
// once per container.
func checkKillAnnotations(q dashboardQuery, d grafanaDashboard) error {
	for _, a := range d.Annotations.List {
		if a.Name != "OOM kills" {
			continue
		}
		if !a.UseValueForTime {
			return fmt.Errorf("annotation %q: its time is not its value", a.Name)
		}
		step, err := time.ParseDuration(a.Step)
		if err != nil {
			return fmt.Errorf("annotation %q: step %q: %v", a.Name, a.Step, err)
		}
		r, err := q.runStep(a.Expr, false, step)
		if err != nil {
			return fmt.Errorf("annotation %q: %v", a.Name, err)
		}
		marks := map[string][]float64{}
		for _, s := range r {
			for _, v := range s.values() {
				if !slices.Contains(marks[s.Metric["pod"]], v) {
					marks[s.Metric["pod"]] = append(marks[s.Metric["pod"]], v)
				}
			}
		}
		for _, pod := range []string{"fluentd", "hog"} {
			if len(marks[pod]) != 1 {
				return fmt.Errorf("annotation %q: pod %s marked at %v, want one kill (marks: %v)", a.Name, pod, marks[pod], marks)
			}
			at := time.UnixMilli(int64(marks[pod][0]))
			if at.Before(q.from) || at.After(q.to) {
				return fmt.Errorf("annotation %q: pod %s's kill marked at %s, outside %s to %s", a.Name, pod, at, q.from, q.to)
			}
		}
		if len(marks) != 2 {
			return fmt.Errorf("annotation %q: marks %v, want pods fluentd and hog", a.Name, marks)
		}
		return nil
	}
	return fmt.Errorf("no annotation \"OOM kills\"")
}
