package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The kill story told right (issue 20), against the real dockerd and real
// kernel OOM kills: what the exporter says became of a container, where it
// counts a kill, and that no count goes down.

// cpuLoad keeps n busy processes running until the test ends: the kills,
// restarts and scrapes of a test then race as on a loaded node.
func cpuLoad(t *testing.T, n int) {
	t.Helper()
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}

// A container restarted by its restart policy (docker compose's
// `restart: always` is the same), whose main process is OOM-killed at each
// of its four runs: four kills under one container id, each in a cgroup of
// its own. The exporter is restarted twice while the kills go on, under CPU
// load, and scraped every 100 ms: its count never goes down, and ends at 4.
// (It went 2 → 1 and 3 → 1: only the last run was counted from the kernel
// log's buffer.)
func TestRestartPolicyKillsSurviveExporterRestarts(t *testing.T) {
	wl := newFaultWorkload(t)
	cpuLoad(t, 2)
	args := []string{"--no-containerd"}
	var current atomic.Pointer[exporter]
	current.Store(startExporter(t, args...))
	oomer := &faultContainer{wl: wl, name: "policy", victim: wl.prefix + "-p", final: 43, step: oomMainStep}
	oomer.id = run(t, []string{"--restart", "on-failure:3", "-v", wl.dir + ":/log"}, oomer.script())
	floors := watchCounters(t, current.Load, []*faultContainer{oomer})
	for n := 1; n <= 4; n++ {
		oomer.waitStarts(t, n-1)
		if n == 2 || n == 3 {
			// Restarted between two runs' kills: the earlier runs' cgroups
			// are gone, their kills only in the kernel log's buffer.
			if err := current.Load().Kill(); err != nil {
				t.Fatal(err)
			}
			current.Store(startExporter(t, args...))
		}
		oomer.trigger(t)
		oomer.waitOOMs(t, n-1)
	}
	oomer.waitExited(t, 137)
	if n, err := wl.victims.count(oomer.victim); err != nil || n != 4 {
		t.Fatalf("the kernel logged %d kills of %s (%v), want 4", n, oomer.victim, err)
	}
	if got := inspect(t, oomer.id, "{{.RestartCount}}"); got != "3" {
		t.Fatalf("restart count %s, want 3", got)
	}
	current.Load().waitCounts(t, oomer.id, counts{OOMs: 4, Restarts: 3, Exited: true, ExitCode: 137})
	floors.stop(t)
}

// untrustedParent makes a cgroup under the test's own, beside the
// harness's cgroup parent, that the exporter is not told about
// (--kernel.cgroup-parent): a cgroup named like a container there is no
// container's until a runtime names it.
func untrustedParent(t *testing.T) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(env.cgroupParent), "mcm-untold-"+randomID(3))
	dir := filepath.Join("/sys/fs/cgroup/memory", p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eventually(t, 30*time.Second, func() error { return removeCgroupTree(dir) })
	})
	return p
}

// removeCgroupTree removes a cgroup and the empty cgroups in it.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(dir)
}

// A container started after the exporter, under a cgroup parent the
// exporter was not told about: its cgroup is found through its main pid,
// after its first kill. Nothing in it is history: the kill gets its record
// and its "OOM kill" line. (It was counted, but taken for history.)
func TestKillInAContainerUnderAnUntoldParent(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--no-containerd")
	parent := untrustedParent(t)
	name := "untold-" + randomID(2)
	id := docker(t, "run", "-d", "--network", "none", "--cgroup-parent", parent, "--memory", "32m", "--memory-swap", "32m", env.image,
		"sh", "-c", fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; sleep 2; (exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1); echo done; sleep 100000`, name))
	t.Cleanup(func() { _, _ = dockerErr("rm", "-f", id) })
	waitLog(t, id, "done")
	e.waitCounts(t, id, counts{OOMs: 1})
	e.waitKill(t, name, map[string]string{"container_id": "docker://" + id, "main_process": "false", "outcome": "lived_on"})
	eventually(t, 30*time.Second, func() error {
		ks, err := e.kills("container=" + id)
		if err != nil {
			return err
		}
		if len(ks) != 1 || ks[0].Victim == nil || ks[0].Victim.Name != name {
			return fmt.Errorf("records %+v, want the kill of %s", ks, name)
		}
		return nil
	})
}

// A crash loop at start, the commonest OOM kill of all: the main process
// is killed as the container starts, before the start's inspect answers.
// Every record, and every "OOM kill" line, names the pod from the
// container's labels. (The first kill's record kept pod="" for ever.)
func TestCrashLoopKillsNameTheirPod(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--no-containerd")
	name := "loop-" + randomID(2)
	pod := "crashloop-" + randomID(2)
	labels := []string{"--restart", "on-failure:2", "--label", "io.kubernetes.pod.name=" + pod,
		"--label", "io.kubernetes.pod.namespace=shop", "--label", "io.kubernetes.container.name=app", "--label", "io.kubernetes.pod.uid=u-" + pod}
	id := run(t, labels, fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1`, name))
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCounts(t, id, counts{OOMs: 3, Restarts: 2, Exited: true, ExitCode: 137})
	eventually(t, 30*time.Second, func() error {
		ks, err := e.kills("container=" + id)
		if err != nil {
			return err
		}
		if len(ks) != 3 {
			return fmt.Errorf("%d records, want 3", len(ks))
		}
		for _, k := range ks {
			if k.Container == nil || k.Container.Pod != pod || k.Container.Namespace != "shop" {
				return errStop{fmt.Errorf("a record without its pod: %+v", k.Container)}
			}
		}
		return nil
	})
	// Each announced once, with its pod: its "OOM kill" line (and Event).
	eventually(t, 30*time.Second, func() error {
		n := 0
		for _, line := range strings.Split(e.logs(), "\n") {
			if strings.Contains(line, `msg="OOM kill"`) && strings.Contains(line, "docker://"+id) {
				n++
				if f := logfmt(line); f["pod"] != pod {
					return errStop{fmt.Errorf("an OOM kill line without the pod: %s", line)}
				}
			}
		}
		if n != 3 {
			return fmt.Errorf("%d OOM kill lines, want 3", n)
		}
		return nil
	})
}

// A wrapper as pid 1 (docker's --init, tini) whose child is the workload:
// the child is OOM-killed, and tini exits with its signal (137). The kill
// ended the container, though its victim was not the main process; the
// exit is an OOM kill's, as the runtime says (OOMKilled). A worker killed
// while its container runs on lived on.
func TestWrappersChildKillEndsItsContainer(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--no-containerd")
	name, worker := "wrapped-"+randomID(2), "worker-"+randomID(2)
	wrapped := run(t, []string{"--init"}, fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; sleep 1; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1`, name))
	lives := run(t, nil, fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; sleep 1; (exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1); echo done; sleep 100000`, worker))
	waitInspect(t, wrapped, "{{.State.Status}}", "exited")
	waitLog(t, lives, "done")
	e.waitKill(t, name, map[string]string{"container_id": "docker://" + wrapped, "main_process": "false", "outcome": "ended"})
	e.waitKill(t, worker, map[string]string{"container_id": "docker://" + lives, "main_process": "false", "outcome": "lived_on"})
	e.waitCounts(t, wrapped, counts{OOMs: 1, Exited: true, ExitCode: 137})
	e.waitValue(t, "container_last_exit_code", wrapped, map[string]string{"reason": "oom_killed"}, 137)
	e.waitValue(t, "container_oom_kills_by_outcome_total", wrapped, map[string]string{"outcome": "ended"}, 1)
	e.waitValue(t, "container_oom_kills_by_outcome_total", lives, map[string]string{"outcome": "lived_on"}, 1)
}

// A kill storm of two containers past the kernel's rate limit (ten
// reports in five seconds, host-wide; after it, only "Killed process"
// lines): every kill counts in its own container, and no victim is named
// or recorded in the other. (With a group kill's members window, on
// cgroup v2, such a victim was taken for a member of the other container's
// group: TestStormVictimIsNeverAnotherContainersMember replays that.)
func TestStormPastTheRateLimit(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t, "--no-containerd")
	const kills = 15
	names := map[string]string{}
	ids := map[string]string{}
	for _, tag := range []string{"a", "b"} {
		name := "storm" + tag + "-" + randomID(2)
		names[tag] = name
		ids[tag] = run(t, nil, fmt.Sprintf("while [ ! -e /tmp/go ]; do sleep 0.01; done; for i in $(seq %d); do %s; done; echo done; sleep 100000", kills, worker(name)))
	}
	for _, id := range ids {
		e.waitCounts(t, id, counts{})
	}
	for _, id := range ids {
		docker(t, "exec", id, "touch", "/tmp/go")
	}
	for _, id := range ids {
		waitLog(t, id, "done")
	}
	alone := 0
	for _, k := range kmsgKillList(t) {
		if (k.name == names["a"] || k.name == names["b"]) && !k.reported {
			alone++
		}
	}
	if alone == 0 {
		t.Errorf("the kernel reported all %d kills in full: the storm did not pass its rate limit", 2*kills)
	}
	for tag, id := range ids {
		other := names["b"]
		if tag == "b" {
			other = names["a"]
		}
		e.waitCounts(t, id, counts{OOMs: kills})
		if v, ok := e.value(t, "container_oom_kills_by_process_total", id, map[string]string{"process": other}); ok {
			t.Errorf("%s: %v kills of the other container's %s named in it", tag, v, other)
		}
		ks, err := e.kills("container=" + id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			if k.Victim != nil && k.Victim.Name == other {
				t.Errorf("%s: a record of the other container's kill: %+v", tag, k)
			}
		}
	}
	t.Logf("%d of %d kills printed without their report", alone, 2*kills)
}
