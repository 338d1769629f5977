package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The file VERSION is the one version of a release: the Makefile reads it for the
// binary's --version and the image's tag, and the chart, the manifests and the
// docs must say the same.
const versionFile = "../VERSION"

// imageRepo is where the release workflow pushes the image, and what the chart and
// the manifests pull.
const imageRepo = "ghcr.io/missing-container-metrics/missing-container-metrics"

var semver = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

func readVersion(t *testing.T) string {
	t.Helper()
	v := strings.TrimSpace(string(readFile(t, versionFile)))
	if !semver.MatchString(v) {
		t.Fatalf("%s: %q is no version MAJOR.MINOR.PATCH", versionFile, v)
	}
	return v
}

func TestChartVersionIsTheVersion(t *testing.T) {
	v := readVersion(t)
	c := loadChart(t)
	if c.Metadata.Version != v || c.Metadata.AppVersion != v {
		t.Errorf("Chart.yaml: version %q, appVersion %q; want both %s (the file VERSION)", c.Metadata.Version, c.Metadata.AppVersion, v)
	}
	objs, _, err := renderChart(c, "mcm", "monitoring", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img := sortObjects(t, objs).daemonSets[0].Spec.Template.Spec.Containers[0].Image; img != imageRepo+":"+v {
		t.Errorf("the chart runs %s by default, want %s:%s", img, imageRepo, v)
	}
}

// make image tags what the chart pulls; --version says VERSION.
func TestMakefileUsesTheVersion(t *testing.T) {
	v := readVersion(t)
	out, err := run(t, time.Minute, "make", "-C", "..", "-n", "image")
	if err != nil {
		t.Fatalf("make -n image: %v\n%s", err, out)
	}
	if !strings.Contains(out, " -t "+imageRepo+":"+v+" ") {
		t.Errorf("make image does not tag %s:%s:\n%s", imageRepo, v, out)
	}
	if !strings.Contains(out, "version.Version="+v+" ") {
		t.Errorf("make build does not stamp version %s:\n%s", v, out)
	}
}

// Every versioned name in the docs, the manifests and the workflows — an image tag
// missing-container-metrics:X.Y.Z, a chart archive missing-container-metrics-X.Y.Z.tgz —
// is the version.
func TestDocsNameTheVersion(t *testing.T) {
	v := readVersion(t)
	mention := regexp.MustCompile(`missing-container-metrics(?::|-)v?([0-9]+\.[0-9]+\.[0-9]+)`)
	var files []string
	for _, pattern := range []string{"../README.md", "../docs/*.md", "../.github/workflows/*.yml", "*/*.md", "kubernetes/*.yaml", "kubernetes/*/*.yaml", chartDir + "/*.md", chartDir + "/templates/*"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	found := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mention.FindAllStringSubmatch(string(b), -1) {
			found[f]++
			if m[1] != v {
				t.Errorf("%s: %q, but the version is %s (the file VERSION)", f, m[0], v)
			}
		}
	}
	for _, must := range []string{"../docs/deploy.md", "kubernetes/daemonset.yaml"} {
		if found[must] == 0 {
			t.Errorf("%s names no versioned image: the check above would check nothing", must)
		}
	}
	t.Logf("versioned names in %d of %d files: %v", len(found), len(files), found)
}
