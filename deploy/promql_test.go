package deploy_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/missing-container-metrics/missing-container-metrics/internal/collector"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// targetLabels are the labels a scrape adds to every series: Prometheus' own, and
// node, which the chart's ServiceMonitor and PodMonitor and the scrape config of
// docs/deploy.md copy from the pod's node (absent elsewhere: an empty label).
var targetLabels = []string{"job", "instance", "node"}

// descString is client_golang's Desc.String().
var descString = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: "(?:[^"\\]|\\.)*", unit: "(?:[^"\\]|\\.)*", constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)
var constLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)

// exportedMetrics returns every metric the exporter exports, with its label names,
// from the descriptors of the collectors it registers: the container and source
// metrics of internal/collector and the build info.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	cs := []prometheus.Collector{
		collector.New(store.New(time.Minute), collector.Options{}),
		versioncollector.NewCollector(collector.Namespace),
	}
	out := map[string][]string{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descString.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read descriptor %s", d)
			}
			name, err := strconv.Unquote(m[1])
			if err != nil {
				t.Fatal(err)
			}
			var ls []string
			for _, cl := range constLabel.FindAllStringSubmatch(m[2], -1) {
				ls = append(ls, cl[1])
			}
			if m[3] != "" {
				for _, v := range strings.Split(m[3], ",") {
					ls = append(ls, strings.TrimSuffix(strings.TrimPrefix(v, "c("), ")"))
				}
			}
			out[name] = ls
		}
	}
	for _, must := range []string{"container_ooms_total", "missing_container_metrics_source_up", "missing_container_metrics_build_info"} {
		if _, ok := out[must]; !ok {
			t.Fatalf("the collectors describe no %s: %v", must, sortedKeys(out))
		}
	}
	return out
}

var promqlParser = parser.NewParser(parser.Options{})

// checkQuery parses q as PromQL and checks that every metric it selects is one the
// exporter exports, that label matchers name labels of that metric, and that the
// labels of by (...) and on (...) are labels of the metrics below them.
func checkQuery(metrics map[string][]string, q string) error {
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return fmt.Errorf("does not parse: %w", err)
	}
	var errs []string
	labelsOf := func(n parser.Node) []string {
		ls := slices.Clone(targetLabels)
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				ls = append(ls, metrics[selectorName(vs)]...)
			}
			return nil
		})
		return ls
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			known, ok := metrics[name]
			if !ok {
				errs = append(errs, fmt.Sprintf("metric %q is not one the exporter exports", name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !slices.Contains(known, m.Name) && !slices.Contains(targetLabels, m.Name) {
					errs = append(errs, fmt.Sprintf("%s has no label %q", name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			if !n.Without {
				have := labelsOf(n.Expr)
				for _, l := range n.Grouping {
					if !slices.Contains(have, l) {
						errs = append(errs, fmt.Sprintf("by (%s): no metric below has that label", l))
					}
				}
			}
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && vm.On {
				for _, side := range []parser.Expr{n.LHS, n.RHS} {
					have := labelsOf(side)
					for _, l := range vm.MatchingLabels {
						if !slices.Contains(have, l) {
							errs = append(errs, fmt.Sprintf("on (%s): %s has no such label", l, side))
						}
					}
				}
			}
		}
		return nil
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func TestCheckQueryFindsMistakes(t *testing.T) {
	metrics := exportedMetrics(t)
	for _, q := range []string{
		`container_oom_total`,
		`increase(container_ooms_total{namspace="x"}[5m])`,
		`sum by (namspace) (container_ooms_total)`,
		`a unless on (container_idd) container_ooms_total`,
		`rate(container_ooms_total[5m]`,
	} {
		if err := checkQuery(metrics, q); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	if err := checkQuery(metrics, `sum by (namespace, job) (container_ooms_total{pod=~".+"}) unless on (namespace) missing_container_metrics_source_up`); err == nil ||
		!strings.Contains(err.Error(), "on (namespace)") {
		t.Errorf("on () with a label of one side only: %v", err)
	}
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Every rule selects metrics the exporter exports, or series an earlier recording
// rule records, by labels they have.
func TestRulesUseExportedMetrics(t *testing.T) {
	metrics := exportedMetrics(t)
	exported := len(metrics)
	rf := readRules(t)
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			if err := checkQuery(metrics, r.Expr); err != nil {
				t.Errorf("rule %s%s: %v\n%s", r.Alert, r.Record, err, r.Expr)
			}
			if r.Record != "" {
				ls, err := recordedLabels(r.Expr)
				if err != nil {
					t.Errorf("recording rule %s: %v", r.Record, err)
				}
				metrics[r.Record] = ls
			}
		}
	}
	t.Logf("%d rule expressions checked against %d exported metrics and %d recorded ones", n, exported, len(metrics)-exported)
}

// recordedLabels returns the labels of what a recording rule records: the rules
// here aggregate by (...) at the top.
func recordedLabels(expr string) ([]string, error) {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	agg, ok := e.(*parser.AggregateExpr)
	if !ok || agg.Without || len(agg.Grouping) == 0 {
		return nil, fmt.Errorf("not an aggregation by (...): %s", expr)
	}
	return agg.Grouping, nil
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID         string  `json:"uid"`
	Title       string  `json:"title"`
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []struct {
			Name            string      `json:"name"`
			BuiltIn         int         `json:"builtIn"`
			Datasource      *datasource `json:"datasource"`
			Expr            string      `json:"expr"`
			UseValueForTime bool        `json:"useValueForTime"`
			Filter          *struct {
				Exclude bool  `json:"exclude"`
				IDs     []int `json:"ids"`
			} `json:"filter"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

var (
	grafanaRange    = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
	grafanaVariable = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}`)
	labelValues     = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\s*\)$`)
)

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// expandGrafana replaces Grafana's variables by what a query gets at run time: a
// duration for the range variables, a regular expression for the dashboard's own.
func expandGrafana(q string, vars map[string]bool) (string, error) {
	q = grafanaRange.ReplaceAllString(q, "5m")
	var err error
	q = grafanaVariable.ReplaceAllStringFunc(q, func(v string) string {
		m := grafanaVariable.FindStringSubmatch(v)
		name := m[1] + m[2]
		if !vars[name] {
			err = fmt.Errorf("variable $%s is not defined in the dashboard", name)
		}
		return ".*"
	})
	return q, err
}

// cadvisorMetrics are the series of cAdvisor (the kubelet's /metrics/cadvisor)
// a dashboard panel may draw the kills on, with their labels; such a panel
// says so in its description, as it is empty where cAdvisor is not scraped.
var cadvisorMetrics = map[string][]string{
	"container_memory_working_set_bytes": {"namespace", "pod", "container", "id", "image", "name"},
}

func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	metrics := exportedMetrics(t)
	for name, ls := range cadvisorMetrics {
		metrics[name] = ls
	}
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] {
		t.Fatal("no datasource variable: the dashboard would be bound to one data source")
	}
	queries := 0
	check := func(where, q string) {
		queries++
		expanded, err := expandGrafana(q, vars)
		if err == nil {
			err = checkQuery(metrics, expanded)
		}
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, q)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: not label_values(selector, label): %q", v.Name, q.Query)
			continue
		}
		// label_values(selector, label) is the selector with the label as a grouping.
		check("variable "+v.Name, fmt.Sprintf("group by (%s) (%s)", m[2], m[1]))
		checkDatasource(t, "variable "+v.Name, v.Datasource)
	}

	ids := map[int]string{}
	var cells []panel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if other, dup := ids[p.ID]; dup {
				t.Errorf("%s: id also used by %q", where, other)
			}
			ids[p.ID] = p.Title
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v outside the 24 columns", where, p.GridPos)
			}
			cells = append(cells, p)
			if p.Type != "row" {
				checkDatasource(t, where, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("%s: no query", where)
				}
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if refs[tg.RefID] {
					t.Errorf("%s: refId %s twice", where, tg.RefID)
				}
				refs[tg.RefID] = true
				checkDatasource(t, where+" target "+tg.RefID, tg.Datasource)
				check(where+" target "+tg.RefID, tg.Expr)
				for name := range cadvisorMetrics {
					if strings.Contains(tg.Expr, name) && !strings.Contains(p.Description, "cAdvisor") {
						t.Errorf("%s: draws cAdvisor's %s without saying so in its description", where, name)
					}
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	annotations := 0
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			continue
		}
		where := fmt.Sprintf("annotation %q", a.Name)
		annotations++
		checkDatasource(t, where, a.Datasource)
		check(where, a.Expr)
		if a.Filter == nil || a.Filter.Exclude || len(a.Filter.IDs) == 0 {
			t.Errorf("%s: shown on every panel, want the panels it marks listed (filter.ids)", where)
			continue
		}
		for _, id := range a.Filter.IDs {
			var found *panel
			for i := range cells {
				if cells[i].ID == id {
					found = &cells[i]
				}
			}
			if found == nil || found.Type != "timeseries" {
				t.Errorf("%s: marks panel %d, which is no time series of the dashboard", where, id)
			}
		}
	}
	if annotations == 0 {
		t.Error("no annotation marks the OOM kills on the graphs")
	}
	for i, a := range cells {
		for _, b := range cells[i+1:] {
			if a.GridPos.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < a.GridPos.X+a.GridPos.W &&
				a.GridPos.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < a.GridPos.Y+a.GridPos.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
	t.Logf("%d panels, %d queries checked against %d exported metrics", len(cells), queries, len(metrics))
}

// checkDatasource: every query goes to the data source the dashboard's variable picks.
func checkDatasource(t *testing.T, where string, ds *datasource) {
	t.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
		t.Errorf("%s: data source %+v, want the ${datasource} variable", where, ds)
	}
}
