package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

func readRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.UnmarshalStrict(readFile(t, rulesFile), &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	out, err := run(t, time.Minute, promtool, "check", "rules", rulesFile)
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := need(t, "promtool", "prometheus")
	out, err := run(t, 2*time.Minute, promtool, "test", "rules", rulesTestFile)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}

// Every alert has labels and annotations an operator can act on, and unit tests in
// which it fires and in which it does not.
func TestEveryAlertIsDocumentedAndTestedBothWays(t *testing.T) {
	rf := readRules(t)
	var tests struct {
		RuleFiles          []string `json:"rule_files"`
		EvaluationInterval string   `json:"evaluation_interval"`
		Tests              []struct {
			Name          string `json:"name"`
			Interval      string `json:"interval"`
			InputSeries   []any  `json:"input_series"`
			AlertRuleTest []struct {
				EvalTime  string `json:"eval_time"`
				Alertname string `json:"alertname"`
				ExpAlerts []struct {
					ExpLabels      map[string]string `json:"exp_labels"`
					ExpAnnotations map[string]string `json:"exp_annotations"`
				} `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, rulesTestFile), &tests); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
				for _, e := range a.ExpAlerts {
					if e.ExpAnnotations["summary"] == "" || e.ExpAnnotations["description"] == "" {
						t.Errorf("test %q: %s fires without the text of its annotations checked", tc.Name, a.Alertname)
					}
				}
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	var runbookSections []string
	runbook := string(readFile(t, runbookFile))
	for _, line := range strings.Split(runbook, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			runbookSections = append(runbookSections, h)
		}
	}
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.Labels["severity"] == "" {
				t.Errorf("%s: no severity label", r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description annotations are both needed", r.Alert)
			}
			if want := runbookURL + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !slices.Contains(runbookSections, r.Alert) {
				t.Errorf("%s: %s has no section \"## %s\"", r.Alert, runbookFile, r.Alert)
			}
			// The table at the runbook's top, where on-call looks first.
			if row := fmt.Sprintf("| [`%s`](#%s) | %s |", r.Alert, strings.ToLower(r.Alert), r.Labels["severity"]); !strings.Contains(runbook, row) {
				t.Errorf("%s: the table of %s has no row beginning %q", r.Alert, runbookFile, row)
			}
			if fires[r.Alert] == 0 || quiet[r.Alert] == 0 {
				t.Errorf("%s: %d unit tests in which it fires and %d in which it does not; want at least one of each",
					r.Alert, fires[r.Alert], quiet[r.Alert])
			}
			t.Logf("%s: fires in %d checks, stays quiet in %d", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
	if alerts < 4 {
		t.Errorf("%d alerts, want the 4 of the issue", alerts)
	}
}

// runbookURL is where the alerts' runbook_url points: docs/runbook.md on GitHub,
// each alert's section by the anchor GitHub makes of its heading.
const (
	runbookFile = "../docs/runbook.md"
	runbookURL  = "https://github.com/missing-container-metrics/missing-container-metrics/blob/main/docs/runbook.md"
)

// updateCopies: UPDATE_COPIES=1 go test ./... writes the copies of the rules and the
// dashboard anew from the files they copy.
var updateCopies = os.Getenv("UPDATE_COPIES") != ""

const staticRuleFile = staticDir + "/prometheus-operator/prometheusrule.yaml"

// The chart's copy of the rules is the file itself, and the static PrometheusRule
// holds the same groups.
func TestRuleCopiesAreEqual(t *testing.T) {
	orig := readFile(t, rulesFile)
	if updateCopies {
		writeFile(t, chartDir+"/files/rules.yml", orig)
		// The static object: its head up to spec:, then the file's groups indented.
		head, _, ok := bytes.Cut(readFile(t, staticRuleFile), []byte("\nspec:\n"))
		_, groups, ok2 := bytes.Cut(orig, []byte("\ngroups:\n"))
		if !ok || !ok2 {
			t.Fatal("cannot find spec: or groups:")
		}
		var b bytes.Buffer
		b.Write(head)
		b.WriteString("\nspec:\n  groups:\n")
		for _, line := range strings.SplitAfter(string(groups), "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("  ")
			}
			b.WriteString(line)
		}
		writeFile(t, staticRuleFile, b.Bytes())
	}
	if chartCopy := readFile(t, chartDir+"/files/rules.yml"); !bytes.Equal(orig, chartCopy) {
		t.Errorf("%s/files/rules.yml differs from %s (UPDATE_COPIES=1 go test writes it)", chartDir, rulesFile)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(orig, &want); err != nil {
		t.Fatalf("%s as a PrometheusRule spec: %v", rulesFile, err)
	}
	objs := decodeFile(t, staticRuleFile)
	if len(objs) != 1 {
		t.Fatalf("want one PrometheusRule, got %d objects", len(objs))
	}
	pr, ok := objs[0].(*monitoringv1.PrometheusRule)
	if !ok {
		t.Fatalf("want a PrometheusRule, got %T", objs[0])
	}
	if !reflect.DeepEqual(pr.Spec, want) {
		t.Errorf("the static PrometheusRule's spec differs from %s (UPDATE_COPIES=1 go test writes it)", rulesFile)
	}
}

// The chart's copy of the dashboard is the file itself.
func TestDashboardCopyIsEqual(t *testing.T) {
	orig := readFile(t, dashboardFile)
	chartCopy := chartDir + "/files/missing-container-metrics.json"
	if updateCopies {
		writeFile(t, chartCopy, orig)
	}
	if !bytes.Equal(orig, readFile(t, chartCopy)) {
		t.Errorf("%s differs from %s (UPDATE_COPIES=1 go test writes it)", chartCopy, dashboardFile)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
