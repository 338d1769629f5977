package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	cdevents "github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerdAddress is the socket of the harness's containerd. Without one the
// test is skipped, and fails under CI.
func containerdAddress(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("MCM_TEST_CONTAINERD_ADDRESS")
	if addr == "" {
		msg := "MCM_TEST_CONTAINERD_ADDRESS is not set: run the tests through scripts/test.sh, which starts the private runtimes"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (a missing prerequisite is a failure under CI)")
		}
		t.Skip(msg)
	}
	return addr
}

// startContainerdExporter starts an exporter that follows the harness's
// containerd (and its dockerd, unless args say --no-docker). The kernel's
// OOM counters are not read unless args say --kernel: every kill the tests
// expect must come from the containerd source.
func startContainerdExporter(t testing.TB, args ...string) *exporter {
	t.Helper()
	base := []string{"--containerd.address=" + containerdAddress(t)}
	if !slices.Contains(args, "--kernel") {
		base = append(base, "--no-kernel")
	}
	return startExporter(t, append(base, args...)...)
}

// containerdCounts reads the values of the containerd container id; ok is
// false until the container is exported.
func (s *scrape) containerdCounts(id string) (counts, bool) { return s.countsOf("containerd://" + id) }

// waitContainerdCounts waits until the exporter shows want for the containerd container id.
func (e *exporter) waitContainerdCounts(t testing.TB, id string, want counts) {
	t.Helper()
	e.waitCountsOf(t, "containerd://"+id, want)
}

// notExported fails the test if any series of the exporter has container_id value key.
func notExported(t testing.TB, e *exporter, key string) {
	t.Helper()
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	for name, mf := range s.Families {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "container_id" && l.GetValue() == key {
					t.Fatalf("%s is exported: %s", key, name)
				}
			}
		}
	}
}

// sourceState reads the exporter's own metrics of a source.
func sourceState(s *scrape, name string) (up, reconnects float64) {
	_, up, _ = s.series("missing_container_metrics_source_up", map[string]string{"source": name})
	_, reconnects, _ = s.series("missing_container_metrics_reconnects_total", map[string]string{"source": name})
	return up, reconnects
}

// ctrd is a containerd client of the harness's containerd, for containers
// made without the CRI plugin, as ctr or nerdctl make them.
type ctrd struct {
	*client.Client
}

func containerdClient(t testing.TB) ctrd {
	t.Helper()
	cli, err := client.New(containerdAddress(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return ctrd{cli}
}

func nsContext(t testing.TB, ns string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// run runs a container in containerd namespace ns with id, on the harness's
// busybox root file system (read-only, with a tmpfs at /tmp), in its cgroup
// parent with a 32 MiB memory limit, and removes it when the test ends.
func (c ctrd) run(t testing.TB, ns, id, script string) client.Task {
	t.Helper()
	rootfs, runcRoot := os.Getenv("MCM_TEST_ROOTFS"), os.Getenv("MCM_TEST_RUNC_ROOT")
	if rootfs == "" || runcRoot == "" {
		t.Fatal("MCM_TEST_ROOTFS and MCM_TEST_RUNC_ROOT must be set (scripts/harness.sh start)")
	}
	ctx := nsContext(t, ns)
	ct, err := c.NewContainer(ctx, id,
		client.WithRuntime("io.containerd.runc.v2", &options.Options{Root: runcRoot}),
		client.WithNewSpec(
			oci.WithRootFSPath(rootfs), oci.WithRootFSReadonly(),
			oci.WithMounts([]specs.Mount{{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}}}),
			oci.WithProcessArgs("/bin/sh", "-c", script),
			oci.WithCgroup(env.cgroupParent+"/"+ns+"-"+id),
			oci.WithMemoryLimit(32<<20),
		))
	if err != nil {
		t.Fatalf("create container %s/%s: %v", ns, id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
		defer cancel()
		if task, err := ct.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
				t.Logf("delete task %s/%s: %v", ns, id, err)
			}
		}
		if err := ct.Delete(ctx); err != nil {
			t.Logf("delete container %s/%s: %v", ns, id, err)
		}
	})
	task, err := ct.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("create task %s/%s: %v", ns, id, err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task %s/%s: %v", ns, id, err)
	}
	return task
}

// waitTaskExit waits until the task exited with code.
func waitTaskExit(t testing.TB, ns string, task client.Task, code uint32) {
	t.Helper()
	ctx := nsContext(t, ns)
	eventually(t, 60*time.Second, func() error {
		st, err := task.Status(ctx)
		if err != nil {
			return err
		}
		if st.Status != client.Stopped {
			return fmt.Errorf("task %s is %s", task.ID(), st.Status)
		}
		if st.ExitStatus != code {
			return errStop{fmt.Errorf("task %s exited with %d, want %d", task.ID(), st.ExitStatus, code)}
		}
		return nil
	})
}

// touch creates a file in the root file system of a running process (a
// container's), the signal that the test's container scripts wait for.
func touch(t testing.TB, pid uint32, path string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(fmt.Sprintf("/proc/%d/root", pid), path), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pidOf is the pid of a container's main process.
func (c ctrd) pidOf(t testing.TB, ns, id string) uint32 {
	t.Helper()
	ctx := nsContext(t, ns)
	ct, err := c.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ct.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return task.Pid()
}

// waitScript is a container script that waits for /tmp/go, then runs then.
func waitScript(then string) string {
	return "while [ ! -e /tmp/go ]; do sleep 0.1; done; " + then
}

// The fluentd story on Kubernetes: a worker is OOM-killed twice while the
// container's main process lives on. No restart, no exit code shows it.
// The kernel reader is on, as by default: containerd's shim, like Docker,
// sends an oom event for every OOM notification of the cgroup, which can be
// more than the kills (3 for 2 were seen at load 18); the kernel's counter
// is exact.
func TestContainerdWorkerOOMKilledTwice(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t, "--kernel")
	cri := criClient(t)
	p := runPod(t, cri, "logging", "fluentd-0")
	id := p.start(t, criContainer{name: "fluentd", script: fmt.Sprintf("for i in 1 2; do %s; done; sleep 100000", oomOnce)})
	e.waitContainerdCounts(t, id, counts{OOMs: 2})
	if st := p.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.Reason != "OOMKilled" {
		t.Fatalf("the container's main process died, or its kill was not seen: %s %s", st.State, st.Reason)
	}
}

// With the kernel's OOM counters read as well, a kill that both the kernel
// and containerd report counts once.
func TestContainerdAndKernelCountEachKillOnce(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t, "--kernel")
	cri := criClient(t)
	p := runPod(t, cri, "logging", "fluentd-1")
	worker := p.start(t, criContainer{name: "fluentd", script: fmt.Sprintf("for i in 1 2; do %s; done; sleep 100000", oomOnce)})
	killed := p.start(t, criContainer{name: "app", script: "exec " + oomOnce})
	p.waitExited(t, killed, 137)
	e.waitContainerdCounts(t, worker, counts{OOMs: 2})
	e.waitContainerdCounts(t, killed, counts{OOMs: 1, Exited: true, ExitCode: 137})
}

// The main process is OOM-killed: one kill and exit code 137. The container
// is no Kubernetes container, and its id is shorter than 12 characters.
func TestContainerdMainProcessOOMKilled(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t)
	c := containerdClient(t)
	id := "oom" + randomID(2)
	task := c.run(t, "e2e-oom", id, "exec "+oomOnce)
	waitTaskExit(t, "e2e-oom", task, 137)
	e.waitContainerdCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
	wantLabels(t, e, "container_ooms_total", "containerd://"+id, map[string]string{
		"container_id": "containerd://" + id, "containerd_namespace": "e2e-oom",
		"name": id, "container": "", "pod": "", "namespace": "",
	})
}

// A probe's or kubectl exec's process that exits non-zero never changes the
// container's exit code; the main process's exit does.
func TestContainerdExecDoesNotChangeExitCode(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t)
	cri := criClient(t)
	p := runPod(t, cri, "shop", "exec-0")
	id := p.start(t, criContainer{name: "app", script: "sleep 100000"})
	e.waitContainerdCounts(t, id, counts{})

	// The exporter reads the same event stream: once the test has seen the
	// exec's exit, the exporter has it queued before any later event.
	c := containerdClient(t)
	ctx := nsContext(t, "k8s.io")
	evs, errs := c.EventService().Subscribe(ctx, `topic=="/tasks/exit"`)
	res, err := cri.ExecSync(criContext(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "exit 5"}, Timeout: 30})
	if err != nil || res.ExitCode != 5 {
		t.Fatalf("exec: %v, %v", res, err)
	}
	waitEvent(t, evs, errs, func(v any) bool {
		ex, ok := v.(*apievents.TaskExit)
		return ok && ex.ContainerID == id && ex.ID != id && ex.ExitStatus == 5
	})
	// Events are applied in order: once a container created after the
	// exec's exit is exported, the exit has been handled.
	sentinel := c.run(t, "e2e-exec", "sentinel"+randomID(2), "sleep 100000")
	e.waitContainerdCounts(t, sentinel.ID(), counts{})
	e.waitContainerdCounts(t, id, counts{})

	p.stop(t, id)
	p.waitExited(t, id, 137)
	e.waitContainerdCounts(t, id, counts{Exited: true, ExitCode: 137})
}

// waitEvent waits for an event of the stream that match accepts.
func waitEvent(t testing.TB, evs <-chan *cdevents.Envelope, errs <-chan error, match func(any) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case env := <-evs:
			v, err := typeurl.UnmarshalAny(env.Event)
			if err == nil && match(v) {
				return
			}
		case err := <-errs:
			t.Fatalf("event stream: %v", err)
		case <-timeout:
			t.Fatal("event not seen within 30s")
		}
	}
}

// A pod's sandbox ("pause") container is no workload: it is never exported,
// while the pod's container is, with the kubelet's names.
func TestContainerdSandboxNotExportedAndKubernetesLabels(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t)
	cri := criClient(t)
	p := runPod(t, cri, "shop", "web-1")
	id := p.start(t, criContainer{name: "app", script: "sleep 100000"})
	e.waitContainerdCounts(t, id, counts{})
	notExported(t, e, "containerd://"+p.id)

	want := map[string]string{
		"container_id":         "containerd://" + id,
		"name":                 "app",
		"container":            "app",
		"pod":                  "web-1",
		"namespace":            "shop",
		"uid":                  p.config.Metadata.Uid,
		"containerd_namespace": "k8s.io",
	}
	if labels := wantLabels(t, e, "container_restarts_total", "containerd://"+id, want); len(labels) != len(want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
}

// The kubelet restarts a pod's container by making a new one. The new one's
// restart count is the kubelet's, so that max by (namespace, pod, container)
// equals kube_pod_container_status_restarts_total; the old one keeps its exit code.
func TestContainerdKubernetesRestart(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t)
	cri := criClient(t)
	p := runPod(t, cri, "shop", "crashy-0")
	first := p.start(t, criContainer{name: "app", script: "exit 2"})
	p.waitExited(t, first, 2)
	e.waitContainerdCounts(t, first, counts{Exited: true, ExitCode: 2})

	second := p.start(t, criContainer{name: "app", restartCount: 1, script: "sleep 100000"})
	e.waitContainerdCounts(t, second, counts{Restarts: 1})
	e.waitContainerdCounts(t, first, counts{Exited: true, ExitCode: 2})

	kubelet := p.status(t, second).Metadata.Attempt
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	var maxRestarts float64
	n := 0
	for _, m := range s.Families["container_restarts_total"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["namespace"] == "shop" && l["pod"] == "crashy-0" && l["container"] == "app" {
			n++
			maxRestarts = max(maxRestarts, m.GetCounter().GetValue())
		}
	}
	if n != 2 || maxRestarts != float64(kubelet) || kubelet != 1 {
		t.Fatalf("max of %d series by (namespace, pod, container) = %v, the kubelet's count is %d", n, maxRestarts, kubelet)
	}
}

// OOM kills, exit codes and the kubelet's restart counts from before the
// exporter started are counted, from containerd's and the CRI plugin's state.
func TestContainerdCountsFromBeforeExporterStart(t *testing.T) {
	t.Parallel()
	cri := criClient(t)
	p := runPod(t, cri, "shop", "before-0")
	killed := p.start(t, criContainer{name: "app", restartCount: 3, script: "exec " + oomOnce})
	worker := p.start(t, criContainer{name: "worker", script: oomOnce + "; sleep 100000"})
	p.waitExited(t, killed, 137)
	eventually(t, 60*time.Second, func() error {
		if r := p.status(t, worker).Reason; r != "OOMKilled" {
			return fmt.Errorf("worker: reason %q", r)
		}
		return nil
	})
	c := containerdClient(t)
	plain := c.run(t, "e2e-before", "p"+randomID(2), "exit 3")
	waitTaskExit(t, "e2e-before", plain, 3)

	e := startContainerdExporter(t)
	e.waitContainerdCounts(t, killed, counts{OOMs: 1, Restarts: 3, Exited: true, ExitCode: 137})
	e.waitContainerdCounts(t, worker, counts{OOMs: 1})
	e.waitContainerdCounts(t, plain.ID(), counts{Exited: true, ExitCode: 3})
}

// Docker's containers are in containerd too (namespace moby): with the Docker
// source on they are reported once, by it; with it off, by the containerd source.
func TestContainerdLeavesDockerContainersToDocker(t *testing.T) {
	t.Parallel()
	c := containerdClient(t)
	both := startContainerdExporter(t)
	onlyContainerd := startContainerdExporter(t, "--no-docker")
	id := run(t, nil, "sleep 100000")
	both.waitCounts(t, id, counts{})
	onlyContainerd.waitContainerdCounts(t, id, counts{})
	// Events are applied in order: once a container started after the
	// Docker container is exported, the Docker container's events are handled.
	sentinel := c.run(t, "e2e-moby", "sentinel"+randomID(2), "sleep 100000")
	both.waitContainerdCounts(t, sentinel.ID(), counts{})
	notExported(t, both, "containerd://"+id)
}

// --containerd.namespaces limits the source to the namespaces listed, in its
// listing and in its events.
func TestContainerdNamespacesFlag(t *testing.T) {
	t.Parallel()
	c := containerdClient(t)
	before := c.run(t, "e2e-ns-other", "before"+randomID(2), "sleep 100000")
	e := startContainerdExporter(t, "--containerd.namespaces=e2e-ns-a,e2e-ns-b")
	other := c.run(t, "e2e-ns-other", "other"+randomID(2), "sleep 100000")
	a := c.run(t, "e2e-ns-a", "a"+randomID(2), "sleep 100000")
	e.waitContainerdCounts(t, a.ID(), counts{})
	notExported(t, e, "containerd://"+before.ID())
	notExported(t, e, "containerd://"+other.ID())
}

// Label values with quotes, backslashes, newlines and any Unicode still give
// exposition text that promtool accepts.
func TestContainerdHostileLabelsGiveValidExposition(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t)
	cri := criClient(t)
	p := runPod(t, cri, "shop", "hostile-0")
	// containerd takes at most 4,096 bytes of a label's key and value.
	hostile := "we\"ird\\pod\nname ✓ " + strings.Repeat("x", 4000)
	id := p.start(t, criContainer{name: "app", script: "sleep 100000", labels: map[string]string{
		"io.kubernetes.pod.name":       hostile,
		"io.kubernetes.pod.namespace":  "{}=,\"",
		"io.kubernetes.container.name": "c\\\"",
	}})
	var text []byte
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		labels, _, ok := s.series("container_ooms_total", map[string]string{"container_id": "containerd://" + id})
		if !ok {
			return fmt.Errorf("not exported yet")
		}
		if labels["pod"] != hostile || labels["namespace"] != "{}=,\"" || labels["name"] != "c\\\"" {
			return errStop{fmt.Errorf("labels %q", labels)}
		}
		text = s.Text
		return nil
	})
	promtoolCheckMetrics(t, text)
}

// containerd stopped and started again while the exporter runs: the exporter
// keeps serving with the source down and keeps its counts; once containerd is
// back it catches up by listing (exits while containerd was away), follows
// events again (a kill after), and counts nothing twice.
// Not parallel: it takes containerd away from every other test.
func TestContainerdRestart(t *testing.T) {
	testContainerdAway(t, stopDaemon)
}

// The same with containerd killed (SIGKILL) instead of stopped.
func TestContainerdKilled(t *testing.T) {
	testContainerdAway(t, killDaemon)
}

func testContainerdAway(t *testing.T, stop func(testing.TB, string)) {
	e := startContainerdExporter(t, "--no-docker")
	cri := criClient(t)
	c := containerdClient(t)
	p := runPod(t, cri, "shop", "away-0")
	worker := p.start(t, criContainer{name: "worker", script: oomOnce + "; " + waitScript(oomOnce+"; sleep 100000")})
	away := p.start(t, criContainer{name: "away", script: waitScript("exit 7")})
	plain := c.run(t, "e2e-away", "w"+randomID(2), waitScript("exit 9"))
	e.waitContainerdCounts(t, worker, counts{OOMs: 1})
	e.waitContainerdCounts(t, away, counts{})
	e.waitContainerdCounts(t, plain.ID(), counts{})
	awayPid, plainPid := c.pidOf(t, "k8s.io", away), plain.Pid()

	stop(t, "containerd")
	t.Cleanup(func() { startDaemon(t, "containerd") }) // if the test fails before it starts it
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if up, _ := sourceState(s, "containerd"); up != 0 {
			return fmt.Errorf("containerd source still up")
		}
		if c, ok := s.containerdCounts(worker); !ok || c != (counts{OOMs: 1}) {
			return errStop{fmt.Errorf("counts lost while containerd is away: %v (exported: %v)", c, ok)}
		}
		return nil
	})
	// Two containers exit while containerd is away: no event will tell.
	touch(t, awayPid, "/tmp/go")
	touch(t, plainPid, "/tmp/go")
	for _, pid := range []uint32{awayPid, plainPid} {
		eventually(t, 30*time.Second, func() error {
			if err := syscall.Kill(int(pid), 0); err == nil {
				return fmt.Errorf("process %d still runs", pid)
			}
			return nil
		})
	}

	startDaemon(t, "containerd")
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if up, reconnects := sourceState(s, "containerd"); up != 1 || reconnects < 1 {
			return fmt.Errorf("containerd source up=%v reconnects=%v", up, reconnects)
		}
		return nil
	})
	e.waitContainerdCounts(t, away, counts{Exited: true, ExitCode: 7})
	e.waitContainerdCounts(t, plain.ID(), counts{Exited: true, ExitCode: 9})
	e.waitContainerdCounts(t, worker, counts{OOMs: 1})

	touch(t, c.pidOf(t, "k8s.io", worker), "/tmp/go")
	e.waitContainerdCounts(t, worker, counts{OOMs: 2})
	after := p.start(t, criContainer{name: "after", restartCount: 2, script: "sleep 100000"})
	e.waitContainerdCounts(t, after, counts{Restarts: 2})
	e.waitContainerdCounts(t, away, counts{Exited: true, ExitCode: 7})
}

// Containers that ctr or nerdctl run in a plain namespace have ids that are
// no 64-digit hex, and cgroups at /NAMESPACE-ID or so: their cgroup path
// names no container. The kernel reader finds them through their main
// process's pid, which containerd gives in its task list (for a container
// running before the exporter started) and in its start event (for one
// started since), so that the kernel log's victims count as the
// container's, not as the host's.
func TestContainerdPlainNamespaceKillsAreTheContainers(t *testing.T) {
	t.Parallel()
	kernelPrereqs(t)
	c := containerdClient(t)
	const ns = "e2e-plain"
	before, after := "web-"+randomID(2), "web-"+randomID(2)
	victim := func(id string) string { return "mcm" + id[len(id)-4:] }
	script := func(id string) string {
		return waitScript(worker(victim(id)) + "; echo done > /tmp/done; sleep 100000")
	}
	c.run(t, ns, before, script(before))
	e := startContainerdExporter(t, "--kernel")
	c.run(t, ns, after, script(after))
	for _, id := range []string{before, after} {
		e.waitContainerdCounts(t, id, counts{})
		touch(t, c.pidOf(t, ns, id), "/tmp/go")
	}
	for _, id := range []string{before, after} {
		e.waitContainerdCounts(t, id, counts{OOMs: 1})
		eventually(t, 30*time.Second, func() error {
			s, err := e.scrape()
			if err != nil {
				return err
			}
			if _, v, ok := s.series("host_oom_kills_total", map[string]string{"process": victim(id)}); ok {
				return errStop{fmt.Errorf("the kill in %s counted as the host's: %v", id, v)}
			}
			_, v, ok := s.series("container_oom_kills_by_process_total", map[string]string{"container_id": "containerd://" + id, "process": victim(id)})
			switch {
			case ok && v == 1:
				return nil
			case !ok && kmsgReportedIn(t, id, victim(id)) == 0:
				// The kernel rate-limited the kill's report (see waitNamed):
				// its cgroup is not known, nor then its name.
				t.Logf("victim %s of %s not named: the kernel did not report its kill in full", victim(id), id)
				return nil
			}
			return fmt.Errorf("victim %s of %s: %v (present %v), want 1", victim(id), id, v, ok)
		})
	}
}

// containerd's ids are unique only within a namespace: two containers
// "web" in two namespaces are two containers, exported as two series that
// the containerd_namespace label tells apart (container_id is what the
// kubelet writes, the same for both). One exits 1 and runs again, the
// other runs on untouched; removing the one leaves the other.
func TestContainerdSameIDInTwoNamespaces(t *testing.T) {
	t.Parallel()
	c := containerdClient(t)
	id := "web-" + randomID(3)
	nsA, nsB := "e2e-a", "e2e-b"
	script := waitScript("exit 1")
	c.run(t, nsA, id, "sleep 100000")
	task := c.run(t, nsB, id, script)
	e := startContainerdExporter(t, "--retention=2s")
	read := func(s *scrape, ns string) (counts, bool) {
		match := map[string]string{"container_id": "containerd://" + id, "containerd_namespace": ns}
		var got counts
		_, ooms, ok1 := s.series("container_ooms_total", match)
		_, restarts, ok2 := s.series("container_restarts_total", match)
		_, code, exited := s.series("container_last_exit_code", match)
		got.OOMs, got.Restarts, got.ExitCode, got.Exited = ooms, restarts, code, exited
		return got, ok1 && ok2
	}
	waitBoth := func(a, b counts, bPresent bool) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			s, err := e.scrape()
			if err != nil {
				return err
			}
			gotA, okA := read(s, nsA)
			gotB, okB := read(s, nsB)
			if !okA || gotA != a || okB != bPresent || (bPresent && gotB != b) {
				return fmt.Errorf("%s/%s: %v (exported %v), want %v; %s/%s: %v (exported %v), want %v (exported %v)",
					nsA, id, gotA, okA, a, nsB, id, gotB, okB, b, bPresent)
			}
			return nil
		})
	}
	waitBoth(counts{}, counts{}, true)

	// b exits 1, and is started again as ctr start does: a new task.
	touch(t, task.Pid(), "/tmp/go")
	waitTaskExit(t, nsB, task, 1)
	ctx := nsContext(t, nsB)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	ct, err := c.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ct.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitBoth(counts{}, counts{Restarts: 1, Exited: true, ExitCode: 1}, true)

	// b is removed: its series go after the retention, a's stay.
	if _, err := again.Delete(ctx, client.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	if err := ct.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	waitBoth(counts{}, counts{}, false)
}

// Anyone who may publish to containerd's event service can send an event
// that makes no sense: it is logged, counted as malformed and skipped, and
// the stream goes on without a reconnect.
func TestContainerdMalformedEventsAreCountedAndTheStreamGoesOn(t *testing.T) {
	t.Parallel()
	e := startContainerdExporter(t)
	c := containerdClient(t)
	const ns = "e2e-bad"
	id := "after-" + randomID(2)
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if up, _ := sourceState(s, "containerd"); up != 1 {
			return fmt.Errorf("containerd source not up")
		}
		return nil
	})
	for topic, ev := range map[string]any{
		"/tasks/exit":  &apievents.TaskExit{ContainerID: "no/such/id", ID: "no/such/id", ExitStatus: 1}, // an id that is no id
		"/tasks/start": &apievents.TaskStart{Pid: 1},                                                    // no id
	} {
		if err := c.EventService().Publish(nsContext(t, ns), topic, ev); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	task := c.run(t, ns, id, "exit 4")
	waitTaskExit(t, ns, task, 4)
	e.waitContainerdCounts(t, id, counts{Exited: true, ExitCode: 4})
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	_, malformed, _ := s.series("missing_container_metrics_malformed_events_total", map[string]string{"source": "containerd"})
	_, reconnects := sourceState(s, "containerd")
	if malformed != 2 || reconnects != 0 {
		t.Fatalf("%v malformed events, %v reconnects; want 2 and 0", malformed, reconnects)
	}
}
