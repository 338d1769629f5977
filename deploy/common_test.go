package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of what the tests check, from deploy/.
const (
	rulesFile      = "prometheus/rules.yml"
	rulesTestFile  = "prometheus/rules_test.yml"
	dashboardFile  = "grafana/missing-container-metrics.json"
	chartDir       = "helm/missing-container-metrics"
	staticDir      = "kubernetes"
	systemdUnit    = "systemd/missing-container-metrics.service"
	systemdEnvFile = "systemd/missing-container-metrics.env"
)

var tmpDir string // removed after the tests

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	tmpDir, err = os.MkdirTemp("", "mcm-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpDir)
	return m.Run()
}

func underCI() bool { return os.Getenv("CI") == "true" }

// need returns the path of program; without it the test skips, or fails under CI
// (where scripts/test.sh has installed it: a missing one is a broken setup).
func need(t *testing.T, program, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (Debian package %s; scripts/test.sh installs it)", program, debianPackage)
	if underCI() {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipping")
	return ""
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs a command with a deadline and returns its combined output.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var (
	exporterOnce sync.Once
	exporterPath string
	exporterErr  error
)

// exporterBinary builds the exporter of this repository once.
func exporterBinary(t *testing.T) string {
	t.Helper()
	exporterOnce.Do(func() {
		exporterPath = filepath.Join(tmpDir, "missing-container-metrics")
		var out string
		// In the exporter's own module, with its own dependencies.
		out, exporterErr = run(t, 5*time.Minute, "go", "build", "-C", "..", "-o", exporterPath, "./cmd/missing-container-metrics")
		if exporterErr != nil {
			exporterErr = fmt.Errorf("building the exporter: %w\n%s", exporterErr, out)
		}
	})
	if exporterErr != nil {
		t.Fatal(exporterErr)
	}
	return exporterPath
}

// cliSpec is what the exporter's --help says it accepts.
type cliSpec struct {
	flags map[string]bool // long names without dashes; a negatable bool also as no-NAME
	envs  map[string]bool
}

var (
	helpFlag = regexp.MustCompile(`^\s+(?:-\w, )?--(\[no-\])?([a-z0-9][a-z0-9.\-]*)`)
	helpEnv  = regexp.MustCompile(`\(\$([A-Z0-9_]+)\)`)
)

// exporterCLI reads the flags and environment variables from the binary's --help.
func exporterCLI(t *testing.T) cliSpec {
	t.Helper()
	out, err := run(t, time.Minute, exporterBinary(t), "--help")
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	spec := cliSpec{flags: map[string]bool{}, envs: map[string]bool{}}
	for _, line := range strings.Split(out, "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			spec.flags[m[2]] = true
			if m[1] != "" {
				spec.flags["no-"+m[2]] = true
			}
		}
		for _, m := range helpEnv.FindAllStringSubmatch(line, -1) {
			spec.envs[m[1]] = true
		}
	}
	if !spec.flags["docker.host"] || !spec.envs["DOCKER_HOST"] {
		t.Fatalf("cannot read the flags from --help:\n%s", out)
	}
	return spec
}

// goRuntimeEnvs are read by the Go runtime of the exporter.
var goRuntimeEnvs = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// checkArgs fails for every --flag in args that the exporter does not know.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	spec := exporterCLI(t)
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: argument %q is no --flag", where, a)
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !spec.flags[name] {
			t.Errorf("%s: the exporter has no flag --%s (%q)", where, name, a)
		}
	}
}

// checkEnv fails for every variable the exporter does not read.
func checkEnv(t *testing.T, where string, names []string) {
	t.Helper()
	spec := exporterCLI(t)
	for _, n := range names {
		if !spec.envs[n] && !goRuntimeEnvs[n] {
			t.Errorf("%s: the exporter reads no variable %s", where, n)
		}
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lockedBuffer collects a process's output for the test's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
