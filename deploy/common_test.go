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

// command is one of this repository's programs, built once.
type command struct {
	name, dir string // the binary's name; its module's directory, from deploy/
	once      sync.Once
	path      string
	err       error
}

var (
	exporter  = &command{name: "missing-container-metrics", dir: "../cmd/missing-container-metrics"}
	companion = &command{name: "missing-container-metrics-events", dir: "../cmd/missing-container-metrics-events"}
)

// binary builds the program once, in its own module with its own
// dependencies, and returns its path.
func (c *command) binary(t *testing.T) string {
	t.Helper()
	c.once.Do(func() {
		c.path = filepath.Join(tmpDir, c.name)
		var out string
		out, c.err = run(t, 5*time.Minute, "go", "build", "-C", c.dir, "-o", c.path, ".")
		if c.err != nil {
			c.err = fmt.Errorf("building %s: %w\n%s", c.name, c.err, out)
		}
	})
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.path
}

// exporterBinary builds the exporter of this repository once.
func exporterBinary(t *testing.T) string { return exporter.binary(t) }

// cliSpec is what a program's --help says it accepts.
type cliSpec struct {
	flags map[string]bool // long names without dashes; a negatable bool also as no-NAME
	envs  map[string]bool
}

var (
	helpFlag = regexp.MustCompile(`^\s+(?:-\w, )?--(\[no-\])?([a-z0-9][a-z0-9.\-]*)`)
	helpEnv  = regexp.MustCompile(`\(\$([A-Z0-9_]+)\)`)
)

// cli reads the flags and environment variables from the program's --help;
// it fails unless they include flag and env.
func (c *command) cli(t *testing.T, flag, env string) cliSpec {
	t.Helper()
	out, err := run(t, time.Minute, c.binary(t), "--help")
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", c.name, err, out)
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
	if !spec.flags[flag] || !spec.envs[env] {
		t.Fatalf("cannot read the flags from %s --help:\n%s", c.name, out)
	}
	return spec
}

// exporterCLI is what the exporter's --help says it accepts.
func exporterCLI(t *testing.T) cliSpec { return exporter.cli(t, "docker.host", "DOCKER_HOST") }

// goRuntimeEnvs are read by the Go runtime of the exporter.
var goRuntimeEnvs = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// checkArgs fails for every --flag in args that the exporter does not know.
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	checkCLI(t, where, "the exporter", exporterCLI(t), args, nil)
}

// checkEnv fails for every variable the exporter does not read.
func checkEnv(t *testing.T, where string, names []string) {
	t.Helper()
	checkCLI(t, where, "the exporter", exporterCLI(t), nil, names)
}

// checkCLI fails for every --flag in args and every variable in envs that
// the program of spec does not know.
func checkCLI(t *testing.T, where, program string, spec cliSpec, args, envs []string) {
	t.Helper()
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: argument %q is no --flag", where, a)
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !spec.flags[name] {
			t.Errorf("%s: %s has no flag --%s (%q)", where, program, name, a)
		}
	}
	for _, n := range envs {
		if !spec.envs[n] && !goRuntimeEnvs[n] {
			t.Errorf("%s: %s reads no variable %s", where, program, n)
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
