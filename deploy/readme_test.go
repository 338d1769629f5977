package deploy_test

import (
	"regexp"
	"strings"
	"testing"
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
