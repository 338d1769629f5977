package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"sigs.k8s.io/yaml"
)

const workflowDir = "../.github/workflows"

func workflows(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(workflowDir + "/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows in %s (%v)", workflowDir, err)
	}
	return files
}

// actionlint (a tool of this module: go tool actionlint) with shellcheck on every
// run: step.
func TestWorkflowsLint(t *testing.T) {
	shellcheck := need(t, "shellcheck", "shellcheck")
	args := append([]string{"tool", "actionlint", "-shellcheck", shellcheck, "-config-file", "../.github/actionlint.yaml"}, workflows(t)...)
	out, err := run(t, 5*time.Minute, "go", args...)
	if err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
}

// testedCommands are the commands a workflow may run, each with the test of the
// test command (scripts/test.sh) that runs it, so that a workflow holds no logic
// the tests do not run.
var testedCommands = map[string]string{
	"make check-release-tag": "TestCheckReleaseTag",
	"make release-image":     "TestReleaseImageCommand (its builds; the push needs buildx and a registry)",
	"make chart":             "TestMakeChart",
	".ci/run":                "the test command itself",
	// GitHub's own CLI, on GitHub's runner: the one step that only a release runs.
	"gh release create": "",
}

func TestWorkflowRunsOnlyTestedCommands(t *testing.T) {
	for _, f := range workflows(t) {
		var wf struct {
			Jobs map[string]struct {
				Steps []struct {
					Run string `json:"run"`
				} `json:"steps"`
			} `json:"jobs"`
		}
		if err := yaml.Unmarshal(readFile(t, f), &wf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := 0
		for name, job := range wf.Jobs {
			for _, s := range job.Steps {
				if s.Run == "" {
					continue
				}
				n++
				if strings.Contains(strings.TrimSpace(s.Run), "\n") {
					t.Errorf("%s job %s: a script of several lines: %q", f, name, s.Run)
					continue
				}
				tested := false
				for c := range testedCommands {
					tested = tested || s.Run == c || strings.HasPrefix(s.Run, c+" ")
				}
				if !tested {
					t.Errorf("%s job %s runs %q, which is no command the tests run (%v)", f, name, s.Run, sortedKeys(testedCommands))
				}
			}
		}
		t.Logf("%s: %d run steps", f, n)
	}
}

func TestCheckReleaseTag(t *testing.T) {
	v := readVersion(t)
	if out, err := run(t, time.Minute, "make", "-s", "-C", "..", "check-release-tag", "TAG=v"+v); err != nil {
		t.Errorf("tag v%s refused: %v\n%s", v, err, out)
	}
	for _, tag := range []string{v, "v" + v + "-rc1", "v0.0.0", ""} {
		if out, err := run(t, time.Minute, "make", "-s", "-C", "..", "check-release-tag", "TAG="+tag); err == nil {
			t.Errorf("tag %q accepted for version %s\n%s", tag, v, out)
		}
	}
}

// make release-image builds both binaries, then pushes one image of both platforms
// under the chart's image name. The builds and each platform's image are tested
// (TestArm64); buildx and the push are not, here.
func TestReleaseImageCommand(t *testing.T) {
	v := readVersion(t)
	out, err := run(t, time.Minute, "make", "-s", "-C", "..", "-n", "release-image")
	if err != nil {
		t.Fatalf("make -n release-image: %v\n%s", err, out)
	}
	for _, want := range []string{"GOOS=linux GOARCH=amd64", "GOOS=linux GOARCH=arm64",
		"buildx build --platform linux/amd64,linux/arm64 ", " -t " + imageRepo + ":" + v + " --push ."} {
		if !strings.Contains(out, want) {
			t.Errorf("make release-image does not run %q:\n%s", want, out)
		}
	}
	// The build context holds exactly the binaries the Dockerfile copies.
	ignore := string(readFile(t, "../.dockerignore"))
	for _, arch := range []string{"amd64", "arm64"} {
		if !strings.Contains(ignore, "\n!bin/linux-"+arch+"/missing-container-metrics\n") {
			t.Errorf(".dockerignore leaves the %s binary out of the build context", arch)
		}
	}
}

// make chart packages the chart with helm's own `helm package`: the archive is the
// release's version, holds the rules and the dashboard, and renders.
func TestMakeChart(t *testing.T) {
	v := readVersion(t)
	out, err := run(t, 10*time.Minute, "make", "-s", "-C", "..", "chart")
	if err != nil {
		t.Fatalf("make chart: %v\n%s", err, out)
	}
	archive := "../bin/missing-container-metrics-" + v + ".tgz"
	if !strings.Contains(out, strings.TrimPrefix(archive, "../")) {
		t.Errorf("make chart does not name %s:\n%s", archive, out)
	}
	c, err := loader.Load(archive)
	if err != nil {
		t.Fatalf("loading %s: %v", archive, err)
	}
	if c.Metadata.Version != v || c.Metadata.AppVersion != v {
		t.Errorf("packaged chart: version %q appVersion %q, want %s", c.Metadata.Version, c.Metadata.AppVersion, v)
	}
	for name, src := range map[string]string{"files/rules.yml": rulesFile, "files/missing-container-metrics.json": dashboardFile} {
		var got []byte
		for _, f := range c.Files {
			if f.Name == name {
				got = f.Data
			}
		}
		if !bytes.Equal(got, readFile(t, src)) {
			t.Errorf("the archive's %s is not %s", name, src)
		}
	}
	unpacked := loadChart(t)
	if !reflect.DeepEqual(c.Values, unpacked.Values) || len(c.Templates) != len(unpacked.Templates) {
		t.Errorf("the archive's values or templates differ from %s", chartDir)
	}
	if _, _, err := renderChart(c, "mcm", "monitoring", parseValues(t, "serviceMonitor: {enabled: true}\nprometheusRule: {enabled: true}")); err != nil {
		t.Errorf("the archive does not render: %v", err)
	}
	if fi, err := os.Stat(archive); err == nil {
		t.Logf("%s: %d bytes", archive, fi.Size())
	}
}
