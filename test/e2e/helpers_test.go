// Package e2e runs the real exporter binary against the real runtimes of the
// test harness (package test/harness, started by scripts/harness.sh) and checks what /metrics shows.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
)

// env holds the harness's settings (scripts/harness.sh start prints them).
var env struct {
	dockerHost   string
	cgroupParent string
	image        string
}

var binary string // the exporter, built once

// testsStarted is when the test binary started: its -timeout counts from then.
var testsStarted = time.Now()

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	env.dockerHost = os.Getenv("MCM_TEST_DOCKER_HOST")
	env.cgroupParent = os.Getenv("MCM_TEST_CGROUP_PARENT")
	env.image = os.Getenv("MCM_TEST_IMAGE")
	if env.dockerHost == "" {
		msg := "e2e: MCM_TEST_DOCKER_HOST is not set: run the tests through scripts/test.sh, which starts the private runtimes"
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, msg+" (a missing prerequisite is a failure under CI)")
			return 1
		}
		fmt.Fprintln(os.Stderr, msg+"; skipping")
		return 0
	}
	dir, err := os.MkdirTemp("", "mcm-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "missing-container-metrics")
	build := exec.Command("go", "build", "-race", "-o", binary, "./cmd/missing-container-metrics")
	build.Dir = "../.."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the exporter:", err)
		return 1
	}
	code := m.Run()
	stopShared()
	stopCRIO()
	removeImage()
	return code
}

// exporter is one running exporter process (test/harness runs it), or only
// the address of one that runs elsewhere (Exporter nil).
type exporter struct {
	*harness.Exporter
	addr string
}

// startExporter starts the exporter against the harness's dockerd (unless
// args give another --docker.host) and waits until it serves. Extra args are
// appended.
func startExporter(t testing.TB, args ...string) *exporter {
	t.Helper()
	return startExporterAs(t, nil, args...)
}

// startExporterAs is startExporter with the exporter running as the user
// and groups cred gives (nil: as the test).
func startExporterAs(t testing.TB, cred *syscall.Credential, args ...string) *exporter {
	t.Helper()
	e, err := newExporterAs(cred, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("exporter log:\n%s", e.logs())
		}
	})
	return e
}

func newExporter(args ...string) (*exporter, error) { return newExporterAs(nil, args...) }

func newExporterAs(cred *syscall.Credential, args ...string) (*exporter, error) {
	// The harness's containers' cgroups are under its cgroup parent, as
	// with Docker's --cgroup-parent.
	base := []string{"--log.level=debug", "--kernel.cgroup-parent=" + env.cgroupParent}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--docker.host=") }) {
		base = append(base, "--docker.host="+env.dockerHost)
	}
	if cred != nil {
		// Another user must reach the binary: its directory is the test's own.
		if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
			return nil, err
		}
	}
	e, err := harness.StartExporter(context.Background(), harness.ExporterOptions{
		Binary: binary, Args: append(base, args...), Credential: cred})
	if err != nil {
		return nil, err
	}
	return &exporter{Exporter: e, addr: e.Addr}, nil
}

func (e *exporter) logs() string { return e.Logs() }

func (e *exporter) stop() { _ = e.Stop() }

// lockedWriter is a buffer that a process's stdout and stderr share.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// sharedExporters are exporters that the tests that only add containers of
// their own share, one for each set of arguments (by their joined text).
var sharedExporters = struct {
	mu sync.Mutex
	m  map[string]*sharedEntry
}{m: map[string]*sharedEntry{}}

type sharedEntry struct {
	once sync.Once
	e    *exporter
	err  error
}

// sharedExporter is one exporter with the default arguments.
func sharedExporter(t *testing.T) *exporter {
	t.Helper()
	return sharedExporterWith(t)
}

// sharedExporterWith is one exporter started with args, shared by every test
// that asks for the same args.
func sharedExporterWith(t *testing.T, args ...string) *exporter {
	t.Helper()
	key := strings.Join(args, "\x00")
	sharedExporters.mu.Lock()
	s := sharedExporters.m[key]
	if s == nil {
		s = &sharedEntry{}
		sharedExporters.m[key] = s
	}
	sharedExporters.mu.Unlock()
	s.once.Do(func() { s.e, s.err = newExporter(args...) })
	if s.err != nil {
		t.Fatalf("shared exporter %v: %v", args, s.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared exporter %v log:\n%s", args, s.e.logs())
		}
	})
	return s.e
}

func stopShared() {
	sharedExporters.mu.Lock()
	defer sharedExporters.mu.Unlock()
	for _, s := range sharedExporters.m {
		if s.e != nil {
			s.e.stop()
		}
	}
}

// waitEvents waits until the exporter has received at least n events of source.
func waitEvents(t testing.TB, e *exporter, source string, n float64) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if _, events, _ := s.series("missing_container_metrics_events_total", map[string]string{"source": source}); events < n {
			return fmt.Errorf("only %v events of %s seen", events, source)
		}
		return nil
	})
}

// checkRetention checks that a removed container's series stay for the
// exporter's --retention=3s after its removal, then go: g runs the
// container, the exporter follows g as runtime.
func checkRetention(t *testing.T, e *exporter, g engine, runtime string) {
	t.Helper()
	id := g.run(t, nil, "exit 2")
	g.waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCountsOf(t, runtime+"://"+id, counts{Exited: true, ExitCode: 2})
	removed := time.Now()
	g.must(t, "rm", id)
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if _, ok := s.countsOf(runtime + "://" + id); ok {
			return fmt.Errorf("series of the removed container still exported")
		}
		return nil
	})
	if gone := time.Since(removed); gone < 3*time.Second {
		t.Fatalf("series dropped %s after removal, before the 3s retention", gone)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// errStop ends eventually at once.
type errStop struct{ error }

// eventually calls f until it returns nil, and fails the test if the
// deadline passes first.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := waitFor(timeout, f); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls f until it returns nil, an errStop, or the deadline passes.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) || time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape is one parsed /metrics.
type scrape struct{ *harness.Metrics }

func (e *exporter) scrape() (*scrape, error) {
	m, err := harness.ScrapeMetrics(context.Background(), "http://"+e.addr+"/metrics")
	if err != nil {
		return nil, err
	}
	return &scrape{m}, nil
}

// series returns the labels and value of the series of family name whose
// labels include match; ok is false if there is none.
func (s *scrape) series(name string, match map[string]string) (map[string]string, float64, bool) {
	all := s.All(name, match)
	if len(all) == 0 {
		return nil, 0, false
	}
	return all[0].Labels, all[0].Value, true
}

// counts is what the exporter shows for one container.
type counts struct {
	OOMs, Restarts float64
	ExitCode       float64
	Exited         bool // container_last_exit_code present
}

func (c counts) String() string {
	code := "none"
	if c.Exited {
		code = fmt.Sprint(c.ExitCode)
	}
	return fmt.Sprintf("ooms=%v restarts=%v exit_code=%s", c.OOMs, c.Restarts, code)
}

// countsOf reads the values of the container whose container_id label is
// containerID ("docker://…", "containerd://…"); ok is false until it is
// exported.
func (s *scrape) countsOf(containerID string) (counts, bool) {
	match := map[string]string{"container_id": containerID}
	var c counts
	_, ooms, ok1 := s.series("container_ooms_total", match)
	_, restarts, ok2 := s.series("container_restarts_total", match)
	_, code, exited := s.series("container_last_exit_code", match)
	c.OOMs, c.Restarts, c.ExitCode, c.Exited = ooms, restarts, code, exited
	return c, ok1 && ok2
}

// containerCounts reads the values of the Docker container id.
func (s *scrape) containerCounts(id string) (counts, bool) { return s.countsOf("docker://" + id) }

// countsAre waits until the exporter shows want for containerID, and says
// what it showed last if it does not within 30 s.
func (e *exporter) countsAre(containerID string, want counts) error {
	return waitFor(30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		got, ok := s.countsOf(containerID)
		if !ok {
			return fmt.Errorf("%s not exported yet", containerID)
		}
		if got != want {
			return fmt.Errorf("%s: got %v, want %v", containerID, got, want)
		}
		return nil
	})
}

// waitCountsOf fails the test unless the exporter shows want for containerID.
func (e *exporter) waitCountsOf(t testing.TB, containerID string, want counts) {
	t.Helper()
	if err := e.countsAre(containerID, want); err != nil {
		t.Fatal(err)
	}
}

// waitCounts waits until the exporter shows want for the Docker container id.
func (e *exporter) waitCounts(t testing.TB, id string, want counts) {
	t.Helper()
	e.waitCountsOf(t, "docker://"+id, want)
}

// engine is a Docker API the tests drive with the docker CLI: the
// harness's dockerd, or its Podman.
type engine struct{ host string }

// dockerd is the harness's dockerd.
func dockerd() engine { return engine{env.dockerHost} }

// cli runs the docker CLI against the engine.
func (g engine) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+g.host)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// must runs the docker CLI and fails the test if it fails.
func (g engine) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := g.cli(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// run starts a detached container in the harness's cgroup parent with a
// 32 MiB memory limit (no swap), and removes it when the test ends.
func (g engine) run(t testing.TB, flags []string, script string) string {
	t.Helper()
	args := append([]string{"run", "-d", "--network", "none", "--cgroup-parent", env.cgroupParent,
		"--memory", "32m", "--memory-swap", "32m"}, flags...)
	args = append(args, env.image, "sh", "-c", script)
	id := g.must(t, args...)
	t.Cleanup(func() { _, _ = g.cli("rm", "-f", id) })
	return id
}

// inspect returns one field of docker inspect, by Go template.
func (g engine) inspect(t testing.TB, id, format string) string {
	t.Helper()
	return g.must(t, "inspect", "--format", format, id)
}

// waitInspect waits until the container's inspect field has the value want.
func (g engine) waitInspect(t testing.TB, id, format, want string) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		got, err := g.cli("inspect", "--format", format, id)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s of %.12s is %q, want %q", format, id, got, want)
		}
		return nil
	})
}

// waitLog waits until the container printed line.
func (g engine) waitLog(t testing.TB, id, line string) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		out, err := g.cli("logs", id)
		if err != nil {
			return err
		}
		if !strings.Contains(out, line) {
			return fmt.Errorf("container %.12s has not printed %q yet (log: %q)", id, line, out)
		}
		return nil
	})
}

// docker runs the docker CLI against the harness's dockerd.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	return dockerd().must(t, args...)
}

func dockerErr(args ...string) (string, error) { return dockerd().cli(args...) }

// run starts a container of the harness's dockerd (engine.run).
func run(t testing.TB, flags []string, script string) string {
	t.Helper()
	return dockerd().run(t, flags, script)
}

// inspect returns one field of docker inspect of a dockerd container.
func inspect(t testing.TB, id, format string) string {
	t.Helper()
	return dockerd().inspect(t, id, format)
}

// waitInspect waits until a dockerd container's inspect field is want.
func waitInspect(t testing.TB, id, format, want string) {
	t.Helper()
	dockerd().waitInspect(t, id, format, want)
}

// waitLog waits until a dockerd container printed line.
func waitLog(t testing.TB, id, line string) {
	t.Helper()
	dockerd().waitLog(t, id, line)
}

var (
	harnessOnce     sync.Once
	harnessOpened   *harness.Harness
	harnessRuntimes *harness.Runtimes
	harnessErr      error
)

// runtimes is the harness that started the runtimes (MCM_TEST_HARNESS_DIR),
// for the tests that stop, kill and start its daemons.
func runtimes(t testing.TB) *harness.Runtimes {
	t.Helper()
	harnessOnce.Do(func() {
		h, err := harness.Open(os.Getenv("MCM_TEST_HARNESS_DIR"))
		if err != nil {
			harnessErr = fmt.Errorf("the harness of MCM_TEST_HARNESS_DIR: %w", err)
			return
		}
		h.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "harness: "+format+"\n", args...) }
		harnessOpened = h
		if harnessRuntimes = h.Runtimes(); harnessRuntimes == nil {
			harnessErr = fmt.Errorf("the harness at %s has no runtimes", h.Dir)
		}
	})
	if harnessErr != nil {
		t.Fatal(harnessErr)
	}
	return harnessRuntimes
}

// daemonOf is the harness's daemon called name ("dockerd", "containerd",
// "podman").
func daemonOf(t testing.TB, name string) *harness.Process {
	t.Helper()
	r := runtimes(t)
	p := map[string]*harness.Process{"dockerd": r.Dockerd(), "containerd": r.Containerd(),
		harness.PodmanService: harnessOpened.Process(harness.PodmanService)}[name]
	if p == nil {
		t.Fatalf("the harness has no daemon %q", name)
	}
	return p
}

// stopDaemon stops the harness's daemon name: SIGTERM, then SIGKILL if it
// has not exited after a deadline.
func stopDaemon(t testing.TB, name string) {
	t.Helper()
	if err := daemonOf(t, name).Stop(); err != nil {
		t.Fatalf("stop %s: %v", name, err)
	}
}

// killDaemon SIGKILLs the harness's daemon name and waits until it is gone.
func killDaemon(t testing.TB, name string) {
	t.Helper()
	if err := daemonOf(t, name).Kill(); err != nil {
		t.Fatalf("kill %s: %v", name, err)
	}
}

// startDaemon starts the harness's daemon name again with the same flags
// (if it does not run) and waits until it answers; after containerd, until
// dockerd reaches it again.
func startDaemon(t testing.TB, name string) {
	t.Helper()
	p := daemonOf(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := runtimes(t)
	start := map[string]func(context.Context) error{"dockerd": r.StartDockerd, "containerd": r.StartContainerd, harness.PodmanService: p.Start}[name]
	if err := start(ctx); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
}

// waitDockerDown waits until the exporter serves /metrics with the Docker
// source down and has logged why, naming the socket.
func waitDockerDown(t *testing.T, e *exporter, sock, why string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		_, up, ok := s.series("missing_container_metrics_source_up", map[string]string{"source": "docker"})
		if !ok || up != 0 {
			return fmt.Errorf("docker source_up present=%v value=%v, want 0", ok, up)
		}
		for _, line := range strings.Split(e.logs(), "\n") {
			if strings.Contains(line, sock) && strings.Contains(line, why) {
				return nil
			}
		}
		return fmt.Errorf("no log line names %s and says %q yet", sock, why)
	})
}

// wantLabels fails the test unless the series of family of containerID
// carries each label of want with its value.
func wantLabels(t testing.TB, e *exporter, family, containerID string, want map[string]string) map[string]string {
	t.Helper()
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	labels, _, _ := s.series(family, map[string]string{"container_id": containerID})
	for k, w := range want {
		if labels[k] != w {
			t.Errorf("label %s=%q, want %q (all: %v)", k, labels[k], w, labels)
		}
	}
	return labels
}
