package deploy_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The README's flag table lists every flag of the exporter's --help, and no other.
func TestReadmeFlagTable(t *testing.T) {
	spec := exporterCLI(t)
	row := regexp.MustCompile("^\\| `--(\\[no-\\])?([a-z0-9][a-z0-9.\\-]*)`")
	listed := map[string]bool{}
	for _, line := range strings.Split(string(readFile(t, "../README.md")), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			listed[m[2]] = true
			if !spec.flags[m[2]] {
				t.Errorf("README lists --%s, which --help does not know", m[2])
			}
		}
	}
	for f := range spec.flags {
		if strings.HasPrefix(f, "no-") || f == "help" || f == "version" || f == "help-long" || f == "help-man" {
			continue
		}
		if !listed[f] {
			t.Errorf("README's flag table lacks --%s", f)
		}
	}
	t.Logf("%d flags in the README's table", len(listed))
}

// The chart README's table of values gives each default as values.yaml has
// it: each key of a row's first cell (`a.b`, `.c`: a sibling of a.b) against
// the default in the same place of its second cell, where that default is a
// literal (`IfPossible`, `[]`); words ("appVersion", "none") are left to the
// reader. A key values.yaml does not have is an error too.
func TestChartReadmeDefaults(t *testing.T) {
	var values map[string]any
	if err := yaml.Unmarshal(readFile(t, chartDir+"/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile("^`([^`]*)`$")
	checked := 0
	for _, line := range strings.Split(string(readFile(t, chartDir+"/README.md")), "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) < 2 {
			continue
		}
		keys := strings.Split(strings.TrimPrefix(cells[0], "| "), ", ")
		defaults := strings.Split(cells[1], ", ")
		parent := ""
		for i, k := range keys {
			k = strings.Trim(k, "`")
			if strings.HasPrefix(k, ".") {
				k = parent + k
			} else if j := strings.LastIndex(k, "."); j >= 0 {
				parent = k[:j]
			}
			if strings.Contains(k, "*") {
				continue
			}
			v, ok := lookup(values, k)
			if !ok {
				t.Errorf("the chart README names %s, which values.yaml does not have", k)
				continue
			}
			if i >= len(defaults) {
				continue
			}
			m := literal.FindStringSubmatch(defaults[i])
			if m == nil {
				continue
			}
			if got, ok := render(v); ok && got != m[1] {
				t.Errorf("the chart README gives %s the default `%s`; values.yaml has %s", k, m[1], got)
			}
			checked++
		}
	}
	t.Logf("%d defaults checked", checked)
	if checked < 20 {
		t.Errorf("only %d defaults checked: has the table's form changed?", checked)
	}
}

// lookup is the value of a dotted key in values.
func lookup(values map[string]any, key string) (any, bool) {
	var v any = values
	for _, p := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

// render is a value as the README writes it; false for a value it writes
// only in words (a map or a list that is not empty).
func render(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		if v == "" {
			return `""`, true
		}
		return v, true
	case map[string]any:
		return "{}", len(v) == 0
	case []any:
		return "[]", len(v) == 0
	case nil:
		return "null", true
	default:
		return fmt.Sprint(v), true
	}
}
