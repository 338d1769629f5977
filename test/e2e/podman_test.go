package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
)

// The Docker suite's scenarios on Podman: Debian's podman 4.3, rootful, its
// API service (podman system service) started by the harness with runc,
// storage of its own and the limits this host allows
// (test/harness/podman.go), followed through its Docker API (--podman).
// Podman sends no oom event: every kill here is counted from the kernel's
// counters, as the exporter runs by default.

// podmanHost is the harness's Podman API socket. Without one the test is
// skipped, and fails under CI.
func podmanHost(t testing.TB) string {
	t.Helper()
	host := os.Getenv("MCM_TEST_PODMAN_HOST")
	if host == "" {
		msg := "MCM_TEST_PODMAN_HOST is not set: run the tests through scripts/test.sh, which starts the private runtimes"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (a missing prerequisite is a failure under CI)")
		}
		t.Skip(msg)
	}
	return host
}

// podman is the harness's Podman, driven with the docker CLI.
func podman(t testing.TB) engine { return engine{podmanHost(t)} }

// startPodmanExporter starts an exporter that follows the harness's Podman
// alone.
func startPodmanExporter(t testing.TB, args ...string) *exporter {
	t.Helper()
	return startExporter(t, append([]string{"--no-docker", "--no-containerd", "--podman", "--podman.host=" + podmanHost(t)}, args...)...)
}

// sharedPodmanExporter is one Podman exporter for the tests that only add
// containers of their own.
func sharedPodmanExporter(t *testing.T) *exporter {
	t.Helper()
	return sharedExporterWith(t, "--no-docker", "--no-containerd", "--podman", "--podman.host="+podmanHost(t))
}

func (e *exporter) waitPodmanCounts(t testing.TB, id string, want counts) {
	t.Helper()
	e.waitCountsOf(t, "podman://"+id, want)
}

// podmanCLI runs podman against the harness's service (podman --remote).
func podmanCLI(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", append([]string{"--remote", "--url", podmanHost(t)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestPodmanWorkerOOMKilledWhileContainerLivesOn(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pm := podman(t)
	id := pm.run(t, nil, fmt.Sprintf("for i in 1 2 3; do %s; done; echo done; sleep 100000", oomOnce))
	pm.waitLog(t, id, "done")
	e.waitPodmanCounts(t, id, counts{OOMs: 3})
	if got := pm.inspect(t, id, "{{.State.Running}}"); got != "true" {
		t.Fatalf("the container's main process died: running=%s", got)
	}
}

func TestPodmanMainProcessOOMKilled(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pm := podman(t)
	id := pm.run(t, nil, "exec "+oomOnce)
	pm.waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitPodmanCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
}

func TestPodmanExitCode(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pm := podman(t)
	id := pm.run(t, nil, "exit 3")
	pm.waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitPodmanCounts(t, id, counts{Exited: true, ExitCode: 3})
}

// Podman restarts the container itself (its restart event, then init and
// start): every start but the first is a restart, as with Docker.
func TestPodmanRestartPolicy(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pm := podman(t)
	id := pm.run(t, []string{"--restart", "on-failure:2"}, "exit 1")
	pm.waitInspect(t, id, "{{.State.Status}} {{.RestartCount}}", "exited 2")
	e.waitPodmanCounts(t, id, counts{Restarts: 2, Exited: true, ExitCode: 1})
}

func TestPodmanStartAfterExitIsARestart(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pm := podman(t)
	id := pm.run(t, nil, "exit 4")
	pm.waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitPodmanCounts(t, id, counts{Exited: true, ExitCode: 4})
	pm.must(t, "start", id)
	pm.waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitPodmanCounts(t, id, counts{Restarts: 1, Exited: true, ExitCode: 4})
}

// An exec that exits non-zero (Podman's exec_died) never changes the exit code.
func TestPodmanExecDoesNotChangeExitCode(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pm := podman(t)
	id := pm.run(t, nil, "sleep 100000")
	e.waitPodmanCounts(t, id, counts{})
	if _, err := pm.cli("exec", id, "sh", "-c", "exit 5"); err == nil {
		t.Fatal("exec exited 0")
	}
	// Events are applied in order: once a container started after the
	// exec is exported, the exec's exit has been handled.
	sentinel := pm.run(t, nil, "sleep 100000")
	e.waitPodmanCounts(t, sentinel, counts{})
	e.waitPodmanCounts(t, id, counts{})
	pm.must(t, "kill", id)
	e.waitPodmanCounts(t, id, counts{Exited: true, ExitCode: 137})
}

// A Podman pod: its containers carry its name as their pod label (and no
// other Kubernetes label: a Podman pod has no namespace), its infra
// container is never exported, and a container of no pod has none.
func TestPodmanPodLabelsAndInfraNotExported(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	pod := "web-" + randomID(3)
	podID := podmanCLI(t, "pod", "create", "--name", pod, "--cgroup-parent", env.cgroupParent)
	t.Cleanup(func() {
		_, _ = exec.Command("podman", "--remote", "--url", podmanHost(t), "pod", "rm", "-f", podID).CombinedOutput()
	})
	id := podmanCLI(t, "run", "-d", "--pod", pod, "--name", pod+"-app", "--memory", "32m", "--memory-swap", "32m", env.image, "sh", "-c", oomOnce+"; sleep 100000")
	infra := podmanCLI(t, "pod", "inspect", "--format", "{{.InfraContainerID}}", pod)
	alone := podman(t).run(t, nil, "sleep 100000")
	e.waitPodmanCounts(t, id, counts{OOMs: 1})
	e.waitPodmanCounts(t, alone, counts{})
	notExported(t, e, "podman://"+infra)

	wantLabels(t, e, "container_ooms_total", "podman://"+id,
		map[string]string{"name": pod + "-app", "pod": pod, "container": "", "namespace": "", "uid": ""})
	wantLabels(t, e, "container_ooms_total", "podman://"+alone, map[string]string{"pod": ""})
}

// The kubelet's labels on a Podman container are Kubernetes' labels, as on Docker.
func TestPodmanKubernetesLabels(t *testing.T) {
	t.Parallel()
	e := sharedPodmanExporter(t)
	id := podman(t).run(t, []string{
		"--label", "io.kubernetes.container.name=app",
		"--label", "io.kubernetes.pod.name=web-1",
		"--label", "io.kubernetes.pod.namespace=shop",
		"--label", "io.kubernetes.pod.uid=0f7e9a1c-5c0f-4ee0-8def-000000000002",
	}, "sleep 100000")
	e.waitPodmanCounts(t, id, counts{})
	wantLabels(t, e, "container_restarts_total", "podman://"+id,
		map[string]string{"name": "app", "container": "app", "pod": "web-1", "namespace": "shop", "uid": "0f7e9a1c-5c0f-4ee0-8def-000000000002"})
}

// OOM kills, restarts and exit codes from before the exporter started. The
// kernel log is not read: Podman's state never says OOMKilled, and the
// restarted container's cgroup went with each run, so its kills are not
// known (with the kernel log, its last run's kill is, from the log's
// history); its restarts and exit code are, and the worker's kill is, from
// its live cgroup's counter.
func TestPodmanCountsFromBeforeExporterStart(t *testing.T) {
	t.Parallel()
	pm := podman(t)
	id := pm.run(t, []string{"--restart", "on-failure:2"}, "exec "+oomOnce)
	pm.waitInspect(t, id, "{{.State.Status}} {{.RestartCount}}", "exited 2")
	worker := pm.run(t, nil, oomOnce+"; echo done; sleep 100000")
	pm.waitLog(t, worker, "done")
	e := startPodmanExporter(t, "--path.kmsg=")
	e.waitPodmanCounts(t, id, counts{Restarts: 2, Exited: true, ExitCode: 137})
	e.waitPodmanCounts(t, worker, counts{OOMs: 1})
}

// A removed container's series stay for --retention after Podman's remove event, then go.
func TestPodmanRetentionOfRemovedContainers(t *testing.T) {
	t.Parallel()
	e := startPodmanExporter(t, "--retention=3s")
	checkRetention(t, e, podman(t), "podman")
}

// The Docker source pointed at Podman's socket (as podman-docker's
// /var/run/docker.sock is) refuses it and says what to run instead: its
// containers would be docker://, their cgroups podman://.
func TestDockerSourceRefusesPodman(t *testing.T) {
	t.Parallel()
	host := podmanHost(t)
	e := startExporter(t, "--docker.host="+host, "--no-containerd")
	waitDockerDown(t, e, host, "is Podman's: follow it with --podman --podman.host="+host)
}

// The Podman service stopped and started while the exporter runs: it keeps
// serving with the source down, keeps its counts, and catches up (Podman
// replays its events from its log).
// Not parallel: it takes Podman away from the other Podman tests.
func TestPodmanServiceRestart(t *testing.T) {
	e := startPodmanExporter(t)
	pm := podman(t)
	before := pm.run(t, nil, oomOnce+"; echo done; sleep 100000")
	pm.waitLog(t, before, "done")
	e.waitPodmanCounts(t, before, counts{OOMs: 1})
	// It exits while the service is away, when the test says so.
	trigger := t.TempDir()
	exited := pm.run(t, []string{"-v", trigger + ":/trigger"}, "while [ ! -e /trigger/go ]; do sleep 0.1; done; exit 6")
	e.waitPodmanCounts(t, exited, counts{})
	pid := pm.inspect(t, exited, "{{.State.Pid}}")

	stopDaemon(t, harness.PodmanService)
	t.Cleanup(func() {
		if p := daemonOf(t, harness.PodmanService); !p.Running() {
			startDaemon(t, harness.PodmanService)
		}
	})
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if up, _ := sourceState(s, "podman"); up != 0 {
			return fmt.Errorf("podman source still up")
		}
		if c, ok := s.countsOf("podman://" + before); !ok || c.OOMs != 1 {
			return errStop{fmt.Errorf("counts lost while Podman is away: %v (exported: %v)", c, ok)}
		}
		return nil
	})
	// The containers live on without the service (conmon watches them),
	// and conmon has Podman record the exit.
	if err := os.WriteFile(filepath.Join(trigger, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			return fmt.Errorf("the container's main process %s still runs", pid)
		}
		return nil
	})
	startDaemon(t, harness.PodmanService)
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if up, reconnects := sourceState(s, "podman"); up != 1 || reconnects < 1 {
			return fmt.Errorf("podman source up=%v reconnects=%v", up, reconnects)
		}
		return nil
	})
	e.waitPodmanCounts(t, exited, counts{Exited: true, ExitCode: 6})
	e.waitPodmanCounts(t, before, counts{OOMs: 1})
}

// The exporter only ever reads from Podman, through its Docker API and its
// own container list.
func TestPodmanSourceOnlyReads(t *testing.T) {
	t.Parallel()
	proxy, host := startRecordingProxyTo(t, podmanHost(t))
	e := startExporter(t, "--no-docker", "--no-containerd", "--podman", "--podman.host="+host)
	pm := podman(t)
	id := pm.run(t, nil, oomOnce+"; sleep 100000")
	e.waitPodmanCounts(t, id, counts{OOMs: 1})
	if _, err := pm.cli("exec", id, "sh", "-c", "exit 5"); err == nil {
		t.Fatal("exec exited 0")
	}
	pm.must(t, "rm", "-f", id)
	waitEvents(t, e, "podman", 5)
	readOnly := regexp.MustCompile(`^(GET|HEAD) (/v[0-9.]+)?/(_ping|version|events|containers/json|containers/[0-9a-f]{64}/json|libpod/containers/json)$`)
	checkReads(t, proxy, readOnly)
}
