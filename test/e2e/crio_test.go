package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
)

// CRI-O, built from its Go module (test/crio/prepare.sh), on Debian's
// conmon and runc. These tests start it themselves, in a harness of their
// own, twice: with its container events (enable_pod_events, the stream the
// kubelet's evented PLEG reads) and without, as CRI-O runs by default,
// where the source polls. Pods are made through its CRI as the kubelet makes
// them (cri_pods_test.go), on the host's network, their cgroups in the
// harness's cgroup parent. CRI-O reports no kill of a worker: those counts
// come from the kernel reader, on as by default.

// crioModes are the two ways the source follows CRI-O.
var crioModes = []struct {
	name   string
	events bool
}{{"events", true}, {"polling", false}}

var crioState struct {
	once sync.Once
	stop sync.Once
	h    *harness.Harness
	by   map[bool]*harness.CRIO // by Events
	err  error
}

// crio returns the CRI-O of the mode (events or not), started at the first
// call. Without CRI-O's binaries (MCM_CRIO_BIN_DIR, else test/crio/prepare.sh
// build, which waits for a build under way) the test fails.
func crio(t testing.TB, events bool) *harness.CRIO {
	t.Helper()
	containerdAddress(t) // the harness's runtimes, or skip (fail under CI) as every e2e test does
	crioState.once.Do(func() { crioState.h, crioState.by, crioState.err = startCRIOs() })
	if crioState.err != nil {
		t.Fatalf("CRI-O: %v", crioState.err)
	}
	return crioState.by[events]
}

func startCRIOs() (*harness.Harness, map[bool]*harness.CRIO, error) {
	dir, err := crioBinDir()
	if err != nil {
		return nil, nil, err
	}
	h, err := harness.New()
	if err != nil {
		return nil, nil, err
	}
	h.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "crio harness: "+format+"\n", args...) }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// go test's -timeout ends the binary without deferred calls: stop
	// CRI-O a minute before, so that no daemon outlives the tests.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 2*time.Minute {
			time.AfterFunc(d-time.Minute-time.Since(testsStarted), func() {
				crioState.stop.Do(func() { _ = h.Close() })
			})
		}
	}
	by := map[bool]*harness.CRIO{}
	for _, m := range crioModes {
		c, err := h.StartCRIO(ctx, harness.CRIOOptions{BinDir: dir, Name: "crio-" + m.name, Events: m.events})
		if err != nil {
			_ = h.Close()
			return nil, nil, err
		}
		by[m.events] = c
	}
	return h, by, nil
}

// crioBinDir is where CRI-O's binaries are: MCM_CRIO_BIN_DIR, else what
// test/crio/prepare.sh build says (at once when they are cached).
func crioBinDir() (string, error) {
	if dir := os.Getenv("MCM_CRIO_BIN_DIR"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command("test/crio/prepare.sh", "build")
	cmd.Dir = "../.."
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/crio/prepare.sh build: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if dir, ok := strings.CutPrefix(sc.Text(), "export MCM_CRIO_BIN_DIR="); ok {
			return dir, nil
		}
	}
	return "", fmt.Errorf("test/crio/prepare.sh build said no MCM_CRIO_BIN_DIR: %q", out)
}

// stopCRIO stops the CRI-Os the tests started, once.
func stopCRIO() {
	crioState.stop.Do(func() {
		if crioState.h != nil {
			if err := crioState.h.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: stopping CRI-O:", err)
			}
		}
	})
}

// forEachCRIOMode runs f as a parallel subtest for CRI-O with and without
// its container events.
func forEachCRIOMode(t *testing.T, f func(t *testing.T, c *harness.CRIO, cri criRuntime)) {
	t.Parallel()
	for _, m := range crioModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			c := crio(t, m.events)
			f(t, c, crioClient(t, c))
		})
	}
}

// crioClient connects to c's CRI, for pods as the kubelet makes them.
func crioClient(t testing.TB, c *harness.CRIO) criRuntime {
	t.Helper()
	return criRuntime{criConnect(t, c.Address), c.Image, runtimeapi.NamespaceMode_CONTAINER}
}

// startCRIOExporter starts an exporter that follows c alone (and the kernel).
func startCRIOExporter(t testing.TB, c *harness.CRIO, args ...string) *exporter {
	t.Helper()
	return startExporter(t, append([]string{"--no-docker", "--no-containerd", "--crio", "--crio.address=" + c.Address}, args...)...)
}

func (e *exporter) waitCRIOCounts(t testing.TB, id string, want counts) {
	t.Helper()
	e.waitCountsOf(t, "cri-o://"+id, want)
}

// The fluentd story on CRI-O: a worker OOM-killed twice while the
// container's main process lives on.
func TestCRIOWorkerOOMKilledTwice(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		e := startCRIOExporter(t, c)
		p := runPod(t, cri, "logging", "fluentd-0")
		id := p.start(t, criContainer{name: "fluentd", script: fmt.Sprintf("for i in 1 2; do %s; done; sleep 100000", oomOnce)})
		e.waitCRIOCounts(t, id, counts{OOMs: 2})
		if st := p.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("the container's main process died: %s", st.State)
		}
	})
}

// The main process OOM-killed: one kill, exit code 137, and CRI-O's reason
// OOMKilled; with the kernel reader off too, from CRI-O's report alone.
func TestCRIOMainProcessOOMKilled(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		e := startCRIOExporter(t, c)
		runtimeOnly := startCRIOExporter(t, c, "--no-kernel")
		p := runPod(t, cri, "shop", "oom-0")
		id := p.start(t, criContainer{name: "app", script: "exec " + oomOnce})
		p.waitExited(t, id, 137)
		if r := p.status(t, id).Reason; r != "OOMKilled" {
			t.Fatalf("CRI-O's reason %q", r)
		}
		e.waitCRIOCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
		runtimeOnly.waitCRIOCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
	})
}

// The kubelet restarts a pod's container by making a new one: the old one
// keeps its exit code, the new one's restarts are the kubelet's count, so
// that max by (namespace, pod, container) equals kube-state-metrics'.
func TestCRIOExitCodeAndKubernetesRestart(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		e := startCRIOExporter(t, c)
		p := runPod(t, cri, "shop", "crashy-0")
		first := p.start(t, criContainer{name: "app", script: "exit 2"})
		p.waitExited(t, first, 2)
		e.waitCRIOCounts(t, first, counts{Exited: true, ExitCode: 2})
		second := p.start(t, criContainer{name: "app", restartCount: 1, script: "sleep 100000"})
		e.waitCRIOCounts(t, second, counts{Restarts: 1})
		e.waitCRIOCounts(t, first, counts{Exited: true, ExitCode: 2})
	})
}

// A pod's sandbox is no container: never exported, while the pod's
// container is, with the kubelet's names.
func TestCRIOSandboxNotExportedAndKubernetesLabels(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		e := startCRIOExporter(t, c)
		p := runPod(t, cri, "shop", "web-1")
		id := p.start(t, criContainer{name: "app", script: "sleep 100000"})
		e.waitCRIOCounts(t, id, counts{})
		notExported(t, e, "cri-o://"+p.id)
		want := map[string]string{
			"container_id": "cri-o://" + id, "name": "app", "container": "app",
			"pod": "web-1", "namespace": "shop", "uid": p.config.Metadata.Uid,
		}
		if labels := wantLabels(t, e, "container_restarts_total", "cri-o://"+id, want); len(labels) != len(want) {
			t.Errorf("labels %v, want %v", labels, want)
		}
	})
}

// An exec's or a probe's exit never changes the exit code; the main
// process's exit does.
func TestCRIOExecDoesNotChangeExitCode(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		e := startCRIOExporter(t, c)
		p := runPod(t, cri, "shop", "exec-0")
		id := p.start(t, criContainer{name: "app", script: "sleep 100000"})
		e.waitCRIOCounts(t, id, counts{})
		res, err := cri.ExecSync(criContext(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "exit 5"}, Timeout: 30})
		if err != nil || res.ExitCode != 5 {
			t.Fatalf("exec: %v, %v", res, err)
		}
		// CRI-O sends no event of an exec and its state stays running:
		// a container started after the exec, once exported, shows that
		// the source has looked since.
		sentinel := p.start(t, criContainer{name: "sentinel", script: "sleep 100000"})
		e.waitCRIOCounts(t, sentinel, counts{})
		e.waitCRIOCounts(t, id, counts{})
		p.stop(t, id)
		p.waitExited(t, id, 137)
		e.waitCRIOCounts(t, id, counts{Exited: true, ExitCode: 137})
	})
}

// Kills, exit codes and the kubelet's restart counts from before the
// exporter started: from CRI-O's statuses (reason OOMKilled, the
// restartCount annotation) and the live cgroups' counters.
func TestCRIOCountsFromBeforeExporterStart(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		p := runPod(t, cri, "shop", "before-0")
		killed := p.start(t, criContainer{name: "app", restartCount: 3, script: "exec " + oomOnce})
		worker := p.start(t, criContainer{name: "worker", script: oomOnce + "; echo done; sleep 100000"})
		p.waitExited(t, killed, 137)
		// Its log, not an exec: an exec's runc init joins a cgroup at its
		// limit, and was seen OOM-killed too.
		p.waitLog(t, worker, "done")
		e := startCRIOExporter(t, c)
		e.waitCRIOCounts(t, killed, counts{OOMs: 1, Restarts: 3, Exited: true, ExitCode: 137})
		e.waitCRIOCounts(t, worker, counts{OOMs: 1})
	})
}

// A removed container's series stay for --retention, then go.
func TestCRIORetentionOfRemovedContainers(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		e := startCRIOExporter(t, c, "--retention=3s")
		p := runPod(t, cri, "shop", "gone-0")
		id := p.start(t, criContainer{name: "app", script: "exit 2"})
		p.waitExited(t, id, 2)
		e.waitCRIOCounts(t, id, counts{Exited: true, ExitCode: 2})
		removed := time.Now()
		if _, err := cri.RemoveContainer(criContext(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			s, err := e.scrape()
			if err != nil {
				return err
			}
			if _, ok := s.countsOf("cri-o://" + id); ok {
				return fmt.Errorf("series of the removed container still exported")
			}
			return nil
		})
		if gone := time.Since(removed); gone < 3*time.Second {
			t.Fatalf("series dropped %s after removal, before the 3s retention", gone)
		}
	})
}

// The log says which way the source follows CRI-O.
func TestCRIOSaysEventsOrPolling(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, _ criRuntime) {
		e := startCRIOExporter(t, c)
		want := "following CRI-O's container events"
		if !c.Events {
			want = "CRI-O serves no container events (enable_pod_events is off): polling"
		}
		// The events mode says so at the first event: make one.
		p := runPod(t, crioClient(t, c), "shop", "say-0")
		id := p.start(t, criContainer{name: "app", script: "sleep 100000"})
		e.waitCRIOCounts(t, id, counts{})
		eventually(t, 30*time.Second, func() error {
			if !strings.Contains(e.logs(), want) {
				return fmt.Errorf("no log line says %q yet", want)
			}
			return nil
		})
	})
}

// The CRI-O source pointed at containerd's CRI socket refuses it, saying why.
func TestCRIOSourceRefusesAnotherRuntime(t *testing.T) {
	t.Parallel()
	addr := containerdAddress(t)
	e := startExporter(t, "--no-docker", "--no-containerd", "--crio", "--crio.address="+addr)
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(e.logs(), `is \"containerd\", not CRI-O`) {
			return fmt.Errorf("no log line says the runtime is containerd")
		}
		return nil
	})
}

// CRI-O stopped and started while the exporter runs: it keeps serving with
// the source down and the counts it had, and catches the exit that happened
// while CRI-O was away (conmon watched the container) at its relisting.
// Not parallel with the other CRI-O tests of the mode: it takes CRI-O away.
func TestCRIORestart(t *testing.T) {
	for _, m := range crioModes {
		t.Run(m.name, func(t *testing.T) {
			c := crio(t, m.events)
			cri := crioClient(t, c)
			e := startCRIOExporter(t, c)
			p := runPod(t, cri, "shop", "away-0")
			worker := p.start(t, criContainer{name: "worker", script: oomOnce + "; sleep 100000"})
			exits := p.start(t, criContainer{name: "exits", script: waitScript("exit 6")})
			e.waitCRIOCounts(t, worker, counts{OOMs: 1})
			e.waitCRIOCounts(t, exits, counts{})
			pid := crioPid(t, cri, exits)

			if err := c.Process().Stop(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if !c.Process().Running() {
					_ = c.Process().Start(context.Background())
				}
			})
			eventually(t, 30*time.Second, func() error {
				s, err := e.scrape()
				if err != nil {
					return err
				}
				if up, _ := sourceState(s, "cri-o"); up != 0 {
					return fmt.Errorf("cri-o source still up")
				}
				if got, ok := s.countsOf("cri-o://" + worker); !ok || got.OOMs != 1 {
					return errStop{fmt.Errorf("counts lost while CRI-O is away: %v", got)}
				}
				return nil
			})
			touch(t, pid, "/tmp/go")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := c.Process().Start(ctx); err != nil {
				t.Fatal(err)
			}
			e.waitCRIOCounts(t, exits, counts{Exited: true, ExitCode: 6})
			e.waitCRIOCounts(t, worker, counts{OOMs: 1})
			s, err := e.scrape()
			if err != nil {
				t.Fatal(err)
			}
			if _, reconnects := sourceState(s, "cri-o"); reconnects < 1 {
				t.Fatalf("reconnects %v", reconnects)
			}
		})
	}
}

// crioPid is the main process's pid of a running CRI-O container (its
// verbose status).
func crioPid(t testing.TB, cri criRuntime, id string) uint32 {
	t.Helper()
	res, err := cri.ContainerStatus(criContext(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid uint32 `json:"pid"`
	}
	if err := json.Unmarshal([]byte(res.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("no pid in CRI-O's verbose status: %v", err)
	}
	return info.Pid
}

// The CRI-O socket is root on the host too: the source only ever reads.
func TestCRIOSourceOnlyReads(t *testing.T) {
	forEachCRIOMode(t, func(t *testing.T, c *harness.CRIO, cri criRuntime) {
		rec, sock := startGRPCRecorder(t, c.Address)
		e := startExporter(t, "--no-docker", "--no-containerd", "--crio", "--crio.address="+sock)
		p := runPod(t, cri, "readonly", "web-0")
		id := p.start(t, criContainer{name: "app", script: oomOnce + "; exit 3"})
		p.waitExited(t, id, 3)
		e.waitCRIOCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 3})
		reads := map[string]bool{
			"/runtime.v1.RuntimeService/Version":            true,
			"/runtime.v1.RuntimeService/GetContainerEvents": true,
			"/runtime.v1.RuntimeService/ListContainers":     true,
			"/runtime.v1.RuntimeService/ContainerStatus":    true,
		}
		methods := rec.seen()
		for _, m := range methods {
			if !reads[m] {
				t.Errorf("call that is not a known read: %s", m)
			}
		}
		for m := range reads {
			// With events, a status is read only for a container an
			// event shows running: one that ran briefly may not be.
			optional := c.Events && m == "/runtime.v1.RuntimeService/ContainerStatus"
			if !optional && !slices.Contains(methods, m) {
				t.Errorf("no %s went through the proxy", m)
			}
		}
		t.Logf("%d calls, all reads", len(methods))
	})
}
