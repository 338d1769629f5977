package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Faults with ground truth: dockerd, containerd and the exporter are killed
// while a workload of known OOM kills, exits and restarts runs, and at the
// end every count the exporter shows equals what happened. What happened is
// told by the workload and the kernel, never by the exporter:
//
//   - every container appends to its own files in a host directory,
//     bind-mounted at /log: "start" at every start (restarts = starts - 1)
//     and "oom" for every OOM kill of one of its processes;
//   - the kernel log names every victim ("Killed process N (name)"), and the
//     victims of each container run under a name of their own;
//   - the exit codes come from docker inspect and the CRI plugin once every
//     container is stopped.
//
// These tests are not parallel: they take dockerd away from every other
// test, and count every OOM kill the kernel logs under their names.

// faultWorkload is the workload's log directory and the kernel's account of
// its victims.
type faultWorkload struct {
	dir     string // bind-mounted at /log
	prefix  string // of the victims' names: this run's own
	victims *kmsgVictims
}

func newFaultWorkload(t *testing.T) *faultWorkload {
	t.Helper()
	kernelPrereqs(t)
	return &faultWorkload{dir: t.TempDir(), prefix: "mcm" + randomID(2), victims: watchKmsgVictims(t)}
}

// faultContainer is one container of the workload: a Docker container, or
// a Kubernetes container run through containerd's CRI plugin.
type faultContainer struct {
	wl     *faultWorkload
	name   string // of its files in the log directory
	victim string // the process name of its OOM victims
	final  int    // its exit code when stopped
	id     string
	step   string
	// A Kubernetes container's pod (nil for a Docker container), its name
	// in the pod, and its attempt: the kubelet's restart count.
	pod       *criPod
	container string
	attempt   int
	// ended is the exit code it ended with when it is not stopped at the
	// end: 7, a Kubernetes container that crashed and was replaced; 137,
	// an OOM-killed main process that is not restarted.
	ended int
}

// The steps a workload container repeats. A step's kill and its line in
// the log are never parted: SIGTERM (docker stop, or dockerd stopping the
// container at its start) only ends the container between two steps.
const (
	// A worker is OOM-killed every 0.3 s; the container lives on.
	workerStep = `(exec -a dd /tmp/$victim if=/dev/zero of=/dev/null bs=64M count=1) 2>/dev/null; ` +
		`[ $? = 137 ] && echo oom >> $log.ooms; sleep 0.2`
	// Exits 7 when the test says so.
	crashStep = `if [ -e $log.go ]; then rm $log.go; exit 7; fi`
	// The main process is OOM-killed when the test says so. It ignores
	// SIGTERM, so nothing but the kill can end it.
	oomMainStep = `if [ -e $log.go ]; then rm $log.go; echo oom >> $log.ooms; trap '' TERM; ` +
		`exec -a dd /tmp/$victim if=/dev/zero of=/dev/null bs=64M count=1; fi`
)

// script is a workload container's: it logs the start, then runs its step
// every 0.1 s until SIGTERM, and exits with its final code. Once the test
// creates /log/finish, it logs "final" and only waits for SIGTERM.
func (c *faultContainer) script() string {
	return fmt.Sprintf(`log=/log/%s; victim=%s; echo start >> $log.starts; trap 'stop=1' TERM
ln -sf /bin/busybox /tmp/$victim
while [ -z "$stop" ]; do
	if [ -e /log/finish ]; then echo final >> $log.starts; while [ -z "$stop" ]; do sleep 0.1; done; break; fi
	%s
	sleep 0.1
done
exit %d`, c.name, c.victim, c.step, c.final)
}

// run runs the workload: in Docker a worker whose workers are OOM-killed
// (restart policy workerRestart), a crasher (on-failure) and an oomer whose
// main process is OOM-killed (oomerRestart), each when the test says so; in
// a pod, a worker and a crasher.
func (wl *faultWorkload) run(t *testing.T, workerRestart, oomerRestart string) (worker, crasher, oomer, kworker, kcrasher *faultContainer) {
	t.Helper()
	worker = wl.docker(t, "worker", "w", 41, workerRestart, workerStep)
	crasher = wl.docker(t, "crasher", "c", 42, "on-failure", crashStep)
	oomer = wl.docker(t, "oomer", "m", 43, oomerRestart, oomMainStep)
	pod := runPod(t, criClient(t), "faults", "pod-"+randomID(2))
	kworker = wl.kubernetes(t, pod, "worker", "kw", 44, workerStep)
	kcrasher = wl.kubernetes(t, pod, "crasher", "kc", 45, crashStep)
	return worker, crasher, oomer, kworker, kcrasher
}

// docker runs a Docker container of the workload with a restart policy;
// tag names its victims.
func (wl *faultWorkload) docker(t *testing.T, name, tag string, final int, restart, step string) *faultContainer {
	t.Helper()
	c := &faultContainer{wl: wl, name: name, victim: wl.prefix + "-" + tag, final: final, step: step}
	c.id = run(t, []string{"--restart", restart, "-v", wl.dir + ":/log"}, c.script())
	c.waitCgroup(t)
	return c
}

// kubernetes runs a container of the workload in a pod, as the kubelet
// does: its first attempt.
func (wl *faultWorkload) kubernetes(t *testing.T, p *criPod, name, tag string, final int, step string) *faultContainer {
	t.Helper()
	c := &faultContainer{wl: wl, victim: wl.prefix + "-" + tag, final: final, step: step, pod: p, container: name}
	c.startInPod(t)
	return c
}

// startInPod creates and starts the attempt of a Kubernetes container.
func (c *faultContainer) startInPod(t *testing.T) {
	t.Helper()
	c.name = fmt.Sprintf("pod-%s-%d", c.container, c.attempt)
	c.id = c.pod.start(t, criContainer{name: c.container, restartCount: c.attempt, script: c.script(),
		mounts: []*runtimeapi.Mount{{ContainerPath: "/log", HostPath: c.wl.dir}}})
	c.waitCgroup(t)
}

// replace does what the kubelet does when the Kubernetes container c
// crashed (exit 7): it runs the next attempt in its place.
func (c *faultContainer) replace(t *testing.T) *faultContainer {
	t.Helper()
	c.waitExited(t, 7)
	c.ended = 7
	next := &faultContainer{wl: c.wl, victim: c.victim, final: c.final, step: c.step, pod: c.pod,
		container: c.container, attempt: c.attempt + 1}
	next.startInPod(t)
	return next
}

// waitCgroup waits until the container's memory cgroup is where waitGone
// looks for its processes.
func (c *faultContainer) waitCgroup(t *testing.T) {
	t.Helper()
	c.eventually(t, func() error {
		_, err := os.Stat(filepath.Join(c.cgroup(), "cgroup.procs"))
		return err
	})
}

func (c *faultContainer) key() string {
	if c.pod != nil {
		return "containerd://" + c.id
	}
	return "docker://" + c.id
}

// state is the runtime's account of the container: its status (Docker's
// words), its exit code, and its restart count (Docker's RestartCount, the
// kubelet's attempt).
func (c *faultContainer) state(t *testing.T) (status string, exitCode, restartCount int) {
	t.Helper()
	if c.pod != nil {
		st := c.pod.status(t, c.id)
		status = strings.ToLower(strings.TrimPrefix(st.State.String(), "CONTAINER_"))
		return status, int(st.ExitCode), int(st.Metadata.Attempt)
	}
	out := inspect(t, c.id, "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}")
	if _, err := fmt.Sscan(out, &status, &exitCode, &restartCount); err != nil {
		t.Fatalf("inspect %s: %q: %v", c.name, out, err)
	}
	return status, exitCode, restartCount
}

// stop stops the container as docker stop and the kubelet do: SIGTERM,
// and SIGKILL only after 30 s. It exits with its final code.
func (c *faultContainer) stop(t *testing.T) {
	t.Helper()
	if c.pod == nil {
		docker(t, "stop", "--time", "30", c.id)
		return
	}
	if _, err := c.pod.cri.StopContainer(criContext(t), &runtimeapi.StopContainerRequest{ContainerId: c.id, Timeout: 30}); err != nil {
		t.Fatalf("StopContainer %s: %v", c.name, err)
	}
}

// lines counts the lines word in the container's file ext ("starts", "ooms").
func (c *faultContainer) lines(t *testing.T, ext, word string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.wl.dir, c.name+"."+ext))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == word {
			n++
		}
	}
	return n
}

func (c *faultContainer) starts(t *testing.T) int { return c.lines(t, "starts", "start") }
func (c *faultContainer) ooms(t *testing.T) int   { return c.lines(t, "ooms", "oom") }

// trigger tells the container to run its step's action (crash, OOM kill) once.
func (c *faultContainer) trigger(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.wl.dir, c.name+".go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitGone waits until the containers took their triggers and no process
// of theirs is left: they exited, whether their runtime knows or not.
func waitGone(t *testing.T, cs ...*faultContainer) {
	t.Helper()
	for _, c := range cs {
		c.eventually(t, func() error {
			if _, err := os.Stat(filepath.Join(c.wl.dir, c.name+".go")); err == nil {
				return fmt.Errorf("%s has not taken its trigger yet", c.name)
			}
			b, err := os.ReadFile(filepath.Join(c.cgroup(), "cgroup.procs"))
			if err == nil && len(b) > 0 {
				return fmt.Errorf("%s still has processes: %s", c.name, strings.Fields(string(b)))
			}
			return nil // no processes, or no cgroup any more
		})
	}
}

// cgroup is the container's memory cgroup (cgroup v1).
func (c *faultContainer) cgroup() string {
	return filepath.Join("/sys/fs/cgroup/memory", env.cgroupParent, c.cgroupInParent())
}

// cgroupInParent is the container's cgroup under the harness's cgroup parent.
func (c *faultContainer) cgroupInParent() string {
	if c.pod != nil {
		return filepath.Join("pod"+c.pod.config.Metadata.Uid, c.id)
	}
	return c.id
}

// waitStarts waits until the container started more than n times.
func (c *faultContainer) waitStarts(t *testing.T, n int) { c.waitLines(t, "starts", "start", n) }

// waitRestarted waits until the container started more than n times and
// its runtime has done starting it. Its process logs the start before the
// runtime's call to start it returns: a daemon killed in between (seen:
// containerd, while dockerd 20.10 restarted a container by its policy)
// fails the start, and dockerd then shows the container stopped for good
// ("restartmanger wait error: transport is closing").
func (c *faultContainer) waitRestarted(t *testing.T, n int) {
	t.Helper()
	c.waitStarts(t, n)
	c.eventually(t, func() error {
		if status, _, _ := c.state(t); status != "running" {
			return fmt.Errorf("%s logged its start, but its runtime shows it %s", c.name, status)
		}
		return nil
	})
}

// waitOOMs waits until more than n of the container's processes were OOM-killed.
func (c *faultContainer) waitOOMs(t *testing.T, n int) { c.waitLines(t, "ooms", "oom", n) }

func (c *faultContainer) waitLines(t *testing.T, ext, word string, n int) {
	t.Helper()
	c.eventually(t, func() error {
		if got := c.lines(t, ext, word); got <= n {
			return fmt.Errorf("%s logged %q %d times, waiting for the %d. time", c.name, word, got, n+1)
		}
		return nil
	})
}

// eventually waits up to 60 s until f returns nil. If it does not, the
// test fails with f's error and then logs where the container is now.
func (c *faultContainer) eventually(t *testing.T, f func() error) {
	t.Helper()
	if err := waitFor(60*time.Second, f); err != nil {
		t.Error(err) // first: whereNow itself can fail the test
		t.Log(c.whereNow(t))
		t.FailNow()
	}
}

// whereNow tells what the test knows of the container when a wait for it
// failed: whether it took its trigger, the processes in its cgroup, what
// its runtime shows, and the lines of the runtimes' logs that name it.
func (c *faultContainer) whereNow(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	_, err := os.Stat(filepath.Join(c.wl.dir, c.name+".go"))
	fmt.Fprintf(&b, "%s: trigger pending: %t\n", c.name, err == nil)
	procs, err := os.ReadFile(filepath.Join(c.cgroup(), "cgroup.procs"))
	fmt.Fprintf(&b, "%s: processes in its cgroup: %q (%v)\n", c.name, strings.Fields(string(procs)), err)
	status, code, restarts := c.state(t)
	fmt.Fprintf(&b, "%s: its runtime shows it %s, exit code %d, restart count %d\n", c.name, status, code, restarts)
	for _, d := range []string{"dockerd", "containerd"} {
		fmt.Fprintf(&b, "%s's log, its last errors and lines naming %s:\n%s\n", d, c.id,
			linesWith(daemonOf(t, d).LogPath(), 40, c.id, "level=error"))
	}
	return b.String()
}

// linesWith is the last n lines of the file at path that contain any of
// the strings.
func linesWith(path string, n int, subs ...string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(l, s) }) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitExited waits until the runtime shows the container exited with code.
func (c *faultContainer) waitExited(t *testing.T, code int) {
	t.Helper()
	c.eventually(t, func() error {
		if status, got, _ := c.state(t); status != "exited" || got != code {
			return fmt.Errorf("%s is %s with exit code %d, want exited with %d", c.name, status, got, code)
		}
		return nil
	})
}

// crash makes each Docker container exit once and waits until its restart
// policy started it again, and its runtime is done starting it.
func crash(t *testing.T, cs ...*faultContainer) {
	t.Helper()
	before := make([]int, len(cs))
	for i, c := range cs {
		before[i] = c.starts(t)
		c.trigger(t)
	}
	for i, c := range cs {
		c.waitRestarted(t, before[i])
	}
}

// finish ends the workload: every running container stops doing anything,
// and runs on until it is stopped.
func (wl *faultWorkload) finish(t *testing.T, cs ...*faultContainer) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(wl.dir, "finish"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		c.eventually(t, func() error {
			b, err := os.ReadFile(filepath.Join(wl.dir, c.name+".starts"))
			if err != nil {
				return err
			}
			if !strings.HasSuffix(string(b), "final\n") {
				return fmt.Errorf("%s has not seen the finish yet", c.name)
			}
			if status, _, _ := c.state(t); status != "running" {
				return fmt.Errorf("%s is %s", c.name, status)
			}
			return nil
		})
	}
}

// truth is what happened to a container, from its own log, the kernel's
// log and its runtime.
type truth struct {
	starts, ooms, victims int
	exitCode              int
	restarts              int // as the exporter counts them
	restartCount          int // the runtime's own: Docker's RestartCount, the kubelet's attempt
}

// truth reads what happened to the stopped container.
func (c *faultContainer) truth(t *testing.T) truth {
	t.Helper()
	exitCode := c.final
	if c.ended != 0 {
		exitCode = c.ended
	}
	tr := truth{starts: c.starts(t), ooms: c.ooms(t)}
	var status string
	status, tr.exitCode, tr.restartCount = c.state(t)
	if status != "exited" || tr.exitCode != exitCode {
		t.Errorf("%s is %s with exit code %d, want exited with %d", c.name, status, tr.exitCode, exitCode)
	}
	tr.restarts = tr.starts - 1
	if c.pod != nil {
		// The kubelet never starts a container twice: it makes a new one,
		// whose restart count is its attempt.
		if tr.starts != 1 || tr.restartCount != c.attempt {
			t.Errorf("%s started %d times, attempt %d; want once, attempt %d", c.name, tr.starts, tr.restartCount, c.attempt)
		}
		tr.restarts = c.attempt
	}
	// The kernel's account of the kills must agree with the container's.
	if err := waitFor(30*time.Second, func() error {
		var err error
		if tr.victims, err = c.wl.victims.count(c.victim); err != nil {
			return errStop{err}
		}
		if tr.victims != tr.ooms {
			return fmt.Errorf("%s: the kernel log names %d victims %q, the container logged %d kills", c.name, tr.victims, c.victim, tr.ooms)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	return tr
}

// check compares what the exporter shows with the truth of every container.
// Only once every container is stopped: while a container runs again after
// an exit no event told of (one while dockerd was away, or before the
// exporter started), its code is lost (Docker resets it at every start), and
// the exporter shows no last exit code until the next exit.
func check(t *testing.T, e *exporter, cs []*faultContainer, truths []truth) {
	t.Helper()
	for i, c := range cs {
		tr := truths[i]
		want := counts{OOMs: float64(tr.ooms), Restarts: float64(tr.restarts), Exited: true, ExitCode: float64(tr.exitCode)}
		if err := e.countsAre(c.key(), want); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		t.Logf("%-10s %2d starts, %2d restarts (runtime's count %d), %2d OOM kills (kernel log: %d), exit code %d",
			c.name, tr.starts, tr.restarts, tr.restartCount, tr.ooms, tr.victims, tr.exitCode)
	}
}

// waitSourcesUp waits until each source named is up and has connected again
// at least as often as its runtime was killed.
func waitSourcesUp(t *testing.T, e *exporter, kills map[string]int) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		for src, n := range kills {
			if up, reconnects := sourceState(s, src); up != 1 || reconnects < float64(n) {
				return fmt.Errorf("%s source up=%v reconnects=%v after %d kills", src, up, reconnects, n)
			}
		}
		return nil
	})
}

// dockerd and containerd are SIGKILLed, each several times, while the
// workload runs in Docker and in a Kubernetes pod: each time, Docker's
// containers exit once while the daemon runs and once while it is away,
// and a Kubernetes container exits while it is away and the kubelet (the
// test) replaces it when it is back. dockerd runs without live-restore:
// when it starts again it stops (SIGTERM) every container it finds running
// and their restart policy starts them again, a real exit and restart each.
// At the end every count equals the truth: none lost, none counted twice.
func TestFaultsRuntimeKills(t *testing.T) {
	runtimeKills(t, "dockerd", "containerd", "dockerd", "containerd", "dockerd")
}

// The same with dockerd's live-restore on: dockerd's restarts leave the
// running containers running, and only the exits while it was away are
// to be found.
func TestFaultsDockerdKilledLiveRestore(t *testing.T) {
	liveRestore(t)
	runtimeKills(t, "dockerd", "dockerd", "dockerd")
}

// liveRestore restarts the harness's dockerd with "live-restore": true in
// its daemon.json, and without it again when the test ends.
func liveRestore(t *testing.T) {
	t.Helper()
	path := runtimes(t).DockerdConfig()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(orig, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	cfg["live-restore"] = true
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Error(err)
		}
		stopDaemon(t, "dockerd")
		startDaemon(t, "dockerd")
	})
	stopDaemon(t, "dockerd")
	startDaemon(t, "dockerd")
	if got := docker(t, "info", "--format", "{{.LiveRestoreEnabled}}"); got != "true" {
		t.Fatalf("dockerd's live-restore: %s", got)
	}
}

// runtimeKills runs the workload while it SIGKILLs and starts again each
// daemon in turn ("dockerd", "containerd").
func runtimeKills(t *testing.T, daemons ...string) {
	began := time.Now()
	wl := newFaultWorkload(t)
	e := startExporter(t, "--containerd.address="+containerdAddress(t))
	worker, crasher, oomer, kworker, kcrasher := wl.run(t, "always", "on-failure")
	all := []*faultContainer{worker, crasher, oomer, kworker, kcrasher}
	floors := watchCounters(t, func() *exporter { return e }, all)
	kills := map[string]int{"docker": 0, "containerd": 0}
	waitSourcesUp(t, e, kills)
	worker.waitOOMs(t, 0)

	sources := map[string]string{"dockerd": "docker", "containerd": "containerd"}
	for _, daemon := range daemons {
		crash(t, crasher, oomer) // while the daemon runs

		killed := time.Now()
		killDaemon(t, daemon)
		kills[sources[daemon]]++
		ooms, kooms := worker.ooms(t), kworker.ooms(t)
		away := []*faultContainer{crasher, oomer}
		if daemon == "containerd" {
			// A Docker container's exit while containerd is away can be
			// lost for good: the shim gives up forwarding it ("forward
			// event ... connection refused") and dockerd shows the
			// container running for ever (seen here with containerd 1.6
			// away for 2 s). The CRI plugin takes its containers' exits
			// back from the shims when it starts.
			away = nil
		}
		starts := make([]int, len(away))
		for i, c := range away {
			starts[i] = c.starts(t)
			c.trigger(t)
		}
		kcrasher.trigger(t)
		// All exited while the daemon is away: an exit while dockerd
		// starts can be lost too (seen: dockerd 20.10 logged the exit and
		// never restarted the container).
		waitGone(t, append(away, kcrasher)...)
		startDaemon(t, daemon)

		waitSourcesUp(t, e, kills)
		for i, c := range away {
			c.waitRestarted(t, starts[i]) // by their restart policy
		}
		worker.waitOOMs(t, ooms)
		kworker.waitOOMs(t, kooms)
		kcrasher = kcrasher.replace(t)
		all = append(all, kcrasher)
		floors.add(kcrasher)
		t.Logf("%s killed, and back with the workload after %s", daemon, time.Since(killed).Round(100*time.Millisecond))
	}
	running := []*faultContainer{worker, crasher, oomer, kworker, kcrasher}
	wl.finish(t, running...)
	for _, c := range running {
		c.stop(t)
	}

	truths := make([]truth, len(all))
	for i, c := range all {
		truths[i] = c.truth(t)
		// dockerd sets RestartCount to 0 when it starts a container again
		// after its own restart: it can only be less.
		if c.pod == nil && truths[i].restartCount > truths[i].restarts {
			t.Errorf("%s: Docker's RestartCount %d, but it started only %d times", c.name, truths[i].restartCount, truths[i].starts)
		}
	}
	check(t, e, all, truths)
	floors.stop(t)
	t.Logf("dockerd killed %d times, containerd %d times; %s", kills["docker"], kills["containerd"], time.Since(began).Round(time.Second))
}

// The exporter is SIGKILLed and started again, several times, while the
// workload runs: exits, restarts, the kubelet's replacements and OOM kills
// happen while it runs and while none runs. Each new exporter takes the
// counts back from the kernel's counters (a live container's kills) and the
// runtimes' state (Docker's RestartCount, exit code and OOMKilled flag; the
// CRI plugin's exit codes and the kubelet's attempts); at the end they equal
// the truth, and no count a scrape showed ever went down from one exporter
// to the next. The workload has only what the exporter can take back
// (docs/design.md): the kills of a container that restarts are not among it.
func TestFaultsExporterKilled(t *testing.T) {
	began := time.Now()
	wl := newFaultWorkload(t)
	args := []string{"--containerd.address=" + containerdAddress(t)}
	var current atomic.Pointer[exporter]
	current.Store(startExporter(t, args...))
	worker, crasher, oomer, kworker, kcrasher := wl.run(t, "no", "no")
	all := []*faultContainer{worker, crasher, oomer, kworker, kcrasher}
	floors := watchCounters(t, current.Load, all)

	const restarts = 3
	for i := range restarts {
		e := current.Load()
		waitSourcesUp(t, e, map[string]int{"docker": 0, "containerd": 0}) // and listed
		crash(t, crasher)                                                 // while the exporter runs
		ooms, kooms := worker.ooms(t), kworker.ooms(t)

		if err := e.Kill(); err != nil {
			t.Fatal(err)
		}
		// While no exporter runs: exits, restarts and OOM kills.
		crash(t, crasher)
		kcrasher.trigger(t)
		kcrasher = kcrasher.replace(t)
		all = append(all, kcrasher)
		floors.add(kcrasher)
		if i == restarts-1 {
			oomer.trigger(t)
			oomer.waitExited(t, 137)
			oomer.ended = 137
		}
		worker.waitOOMs(t, ooms)
		kworker.waitOOMs(t, kooms)
		current.Store(startExporter(t, args...))
	}
	running := []*faultContainer{worker, crasher, kworker, kcrasher}
	wl.finish(t, running...)
	// The workers never restarted: their one cgroup's counter counts all their kills.
	for _, c := range []*faultContainer{worker, kworker} {
		if n, err := kernelKills(c.cgroupInParent()); err != nil || n != c.ooms(t) {
			t.Errorf("%s: its cgroup counts %d kills (%v), it logged %d", c.name, n, err, c.ooms(t))
		}
	}
	for _, c := range running {
		c.stop(t)
	}

	truths := make([]truth, len(all))
	for i, c := range all {
		truths[i] = c.truth(t)
		// No dockerd restart and no docker start: RestartCount is exact.
		if truths[i].restartCount != truths[i].restarts {
			t.Errorf("%s: the runtime's restart count is %d, want %d", c.name, truths[i].restartCount, truths[i].restarts)
		}
	}
	check(t, current.Load(), all, truths)
	floors.stop(t)
	t.Logf("exporter killed %d times; %s", restarts, time.Since(began).Round(time.Second))
}

// counterFloors scrapes the exporter every 100 ms and remembers the highest
// value of each counter of the workload's containers: none may ever go
// down, across dockerd's restarts and the exporter's own (a counter that
// goes down is a reset to Prometheus, which then counts it all again).
type counterFloors struct {
	mu      sync.Mutex
	names   map[string]string // of the containers watched, by container_id
	high    map[string]float64
	errs    []string
	scrapes int
	quit    chan struct{}
	done    chan struct{}
}

func watchCounters(t *testing.T, current func() *exporter, cs []*faultContainer) *counterFloors {
	t.Helper()
	f := &counterFloors{names: map[string]string{}, high: map[string]float64{}, quit: make(chan struct{}), done: make(chan struct{})}
	for _, c := range cs {
		f.add(c)
	}
	go func() {
		defer close(f.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-f.quit:
				return
			case <-tick.C:
			}
			if s, err := current().scrape(); err == nil { // none while the exporter is down
				f.check(s)
			}
		}
	}()
	t.Cleanup(func() { f.halt() })
	return f
}

// add watches the counters of one more container.
func (f *counterFloors) add(c *faultContainer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names[c.key()] = c.name
}

func (f *counterFloors) check(s *scrape) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scrapes++
	for _, fam := range []string{"container_ooms_total", "container_restarts_total"} {
		for _, m := range s.Families[fam].GetMetric() {
			var name string
			for _, l := range m.GetLabel() {
				if l.GetName() == "container_id" {
					name = f.names[l.GetValue()]
				}
			}
			if name == "" {
				continue
			}
			k, v := fam+" of "+name, m.GetCounter().GetValue()
			if high, ok := f.high[k]; ok && v < high {
				f.errs = append(f.errs, fmt.Sprintf("%s went down from %v to %v", k, high, v))
			}
			f.high[k] = max(f.high[k], v)
		}
	}
}

func (f *counterFloors) halt() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}

// stop stops scraping and fails the test if a counter went down.
func (f *counterFloors) stop(t *testing.T) {
	t.Helper()
	f.halt()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scrapes < 10 {
		t.Errorf("only %d scrapes while the workload ran", f.scrapes)
	}
	for _, e := range f.errs {
		t.Error(e)
	}
}

// kmsgVictims counts, by process name, the victims the kernel log names
// ("Killed process N (name)") from the moment it is made: the kernel's own
// account of every OOM kill, never rate-limited.
type kmsgVictims struct {
	mu     sync.Mutex
	byName map[string]int
	err    error
}

var killedProcess = regexp.MustCompile(`Killed process \d+ \(([^)]*)\)`)

func watchKmsgVictims(t *testing.T) *kmsgVictims {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	k := &kmsgVictims{byName: map[string]int{}}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			n, err := unix.Read(fd, buf)
			switch {
			case err == nil:
				if m := killedProcess.FindSubmatch(buf[:n]); m != nil {
					k.mu.Lock()
					k.byName[string(m[1])]++
					k.mu.Unlock()
				}
				continue
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			default: // EPIPE: records were overwritten before they were read
				k.mu.Lock()
				k.err = fmt.Errorf("reading the kernel log: %w", err)
				k.mu.Unlock()
			}
			select {
			case <-quit:
				return
			default:
			}
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		}
	}()
	t.Cleanup(func() {
		close(quit)
		<-done
		unix.Close(fd)
	})
	return k
}

// count is how many victims named name the kernel logged; an error if
// records were lost before they could be read.
func (k *kmsgVictims) count(name string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byName[name], k.err
}

// socketProxy listens on a unix socket and forwards every connection to
// the harness's dockerd: a socket that can appear late, or change its mode.
func socketProxy(t *testing.T, path string) {
	t.Helper()
	upstream := strings.TrimPrefix(env.dockerHost, "unix://")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	keep := func(c ...net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c...)
	}
	go func() {
		for {
			down, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", upstream)
			if err != nil {
				down.Close()
				continue
			}
			keep(down, up)
			go func() { _, _ = io.Copy(up, down); up.Close() }()
			go func() { _, _ = io.Copy(down, up); down.Close() }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// socketDir is a directory for a socket that anyone may look into.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mcm-e2e-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A Docker socket that is not there when the exporter starts, or that the
// exporter may not use: it serves /metrics with the source down and logs
// why, naming the socket, and follows Docker once the socket is there for
// it, with the counts of a container from before.
func TestFaultsDockerSocketLate(t *testing.T) {
	t.Parallel()
	// Exits, not OOM kills: on a loaded host dockerd may handle a main
	// process's exit before containerd's OOM event and never set OOMKilled.
	id := run(t, []string{"--restart", "on-failure:2"}, "exit 3")
	waitInspect(t, id, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", "exited 2 3")
	want := counts{Restarts: 2, Exited: true, ExitCode: 3}
	args := []string{"--no-containerd", "--no-kernel"}

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(socketDir(t), "docker.sock")
		e := startExporter(t, append(args, "--docker.host=unix://"+sock)...)
		waitDockerDown(t, e, sock, "no such file or directory")
		socketProxy(t, sock)
		e.waitCounts(t, id, want)
		waitSourcesUp(t, e, map[string]int{"docker": 0})
	})

	t.Run("no permission", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(socketDir(t), "docker.sock")
		socketProxy(t, sock)
		if err := os.Chmod(sock, 0o600); err != nil { // root's; the exporter runs as nobody
			t.Fatal(err)
		}
		e := startExporterAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, append(args, "--docker.host=unix://"+sock)...)
		waitDockerDown(t, e, sock, "permission denied")
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
		e.waitCounts(t, id, want)
		waitSourcesUp(t, e, map[string]int{"docker": 0})
	})
}
