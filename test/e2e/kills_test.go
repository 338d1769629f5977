package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every OOM kill is explained: the record the exporter makes of a real kill
// has every field right, checked against what the test set up (the limit),
// started (the process and its name) and saw (its pid). The record shows in
// the exporter's log, once (its info line "OOM kill"), and at /kills.

// killLine finds the exporter's log line of the kill of process, and its
// fields; ok is false until it is logged.
func (e *exporter) killLine(process string) (map[string]string, int, bool) {
	var fields map[string]string
	n := 0
	for _, line := range strings.Split(e.logs(), "\n") {
		if !strings.Contains(line, `msg="OOM kill"`) || !strings.Contains(line, "process="+process+" ") {
			continue
		}
		n++
		fields = logfmt(line)
	}
	return fields, n, n > 0
}

// logfmt reads the key=value pairs of a logfmt line (values may be quoted).
func logfmt(line string) map[string]string {
	out := map[string]string{}
	for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimSpace(rest) {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		if strings.HasPrefix(v, `"`) {
			end := 1
			for end < len(v) && (v[end] != '"' || v[end-1] == '\\') {
				end++
			}
			val, err := strconv.Unquote(v[:min(end+1, len(v))])
			if err != nil {
				val = v[1:end]
			}
			out[k], rest = val, v[min(end+1, len(v)):]
			continue
		}
		val, after, _ := strings.Cut(v, " ")
		out[k], rest = val, after
	}
	return out
}

// waitKill waits until the exporter logged the kill of process, once, and
// checks its fields against want.
func (e *exporter) waitKill(t *testing.T, process string, want map[string]string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		got, n, ok := e.killLine(process)
		if !ok {
			return fmt.Errorf("no log line of the kill of %s yet", process)
		}
		if n != 1 {
			return errStop{fmt.Errorf("the kill of %s logged %d times", process, n)}
		}
		for k, w := range want {
			if got[k] != w {
				return errStop{fmt.Errorf("the kill of %s: %s=%q, want %q (all: %v)", process, k, got[k], w, got)}
			}
		}
		return nil
	})
}

// hostPid finds the host pid of the container's process whose command line
// holds marker (docker top shows host pids).
func hostPid(t *testing.T, id, marker string) string {
	t.Helper()
	var pid string
	eventually(t, 30*time.Second, func() error {
		out, err := dockerErr("top", id, "-eo", "pid,args")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && strings.Contains(line, marker) {
				pid = f[0]
				return nil
			}
		}
		return fmt.Errorf("no process with %q in %.12s yet:\n%s", marker, id, out)
	})
	return pid
}

// The container's own limit: a worker, started as a child of the shell, is
// OOM-killed and the container lives on.
func TestKillRecordOfAWorker(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	name := "rec-" + randomID(2)
	// The worker waits, under its own command line, and then becomes dd
	// named name: exec keeps its pid.
	// The marker is made when the shell runs, so that only the worker's
	// command line holds it, not the shell's.
	id := run(t, nil, fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; w=waiter; sh -c 'while [ ! -e /tmp/go ]; do sleep 0.05; done; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1' "$w-%[1]s" & wait; echo done; sleep 100000`, name))
	pid := hostPid(t, id, "waiter-"+name)
	docker(t, "exec", id, "touch", "/tmp/go")
	waitLog(t, id, "done")
	e.waitKill(t, name, map[string]string{
		"from": "kernel log", "container_id": "docker://" + id, "pid": pid, "main_process": "false",
		"scope": "container", "limit_bytes": strconv.Itoa(32 << 20), "trigger": name, "trigger_pid": pid,
	})
	got, _, _ := e.killLine(name)
	if usage, _ := strconv.Atoi(got["usage_bytes"]); usage < 30<<20 || usage > 32<<20 {
		t.Errorf("usage %q bytes at the kill, want about the 32 MiB limit", got["usage_bytes"])
	}
	if anon, _ := strconv.Atoi(got["anon_rss_bytes"]); anon < 16<<20 {
		t.Errorf("the victim's anon RSS %q bytes, want most of what it took under the 32 MiB limit", got["anon_rss_bytes"])
	}
	e.waitCounts(t, id, counts{OOMs: 1})
	e.waitValue(t, "container_oom_kills_by_scope_total", id, map[string]string{"scope": "container"}, 1)
	e.waitValue(t, "container_last_oom_memory_limit_bytes", id, nil, 32<<20)
}

// The main process is the victim: the container dies of it, and its exit's
// reason says so.
func TestKillRecordOfTheMainProcess(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	name := "main-" + randomID(2)
	id := run(t, nil, fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; while [ ! -e /tmp/go ]; do sleep 0.05; done; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1`, name))
	pid := inspect(t, id, "{{.State.Pid}}")
	n, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Through /proc: a docker exec would be killed with the container.
	touch(t, uint32(n), "/tmp/go")
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitKill(t, name, map[string]string{"container_id": "docker://" + id, "pid": pid, "main_process": "true", "scope": "container"})
	e.waitCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
	e.waitValue(t, "container_last_exit_code", id, map[string]string{"reason": "oom_killed"}, 137)
}

// Why a container last exited, in the two cases Kubernetes labels wrongly
// (kubernetes/kubernetes#140718, #104454): a worker OOM-killed, then the
// container stopped with SIGTERM; and a stop that ends in SIGKILL (137)
// with no OOM kill at all. Neither is an OOM kill's exit.
func TestExitReasonsThatTellTheTruth(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	// A worker killed, then docker stop: the shell dies of SIGTERM, and the
	// container's init (docker's tini) exits 143 with it. (A shell that is
	// pid 1 itself would ignore SIGTERM.)
	worker := run(t, []string{"--init"}, worker("victim-"+randomID(2))+"; echo done; while :; do sleep 0.1; done")
	waitLog(t, worker, "done")
	e.waitCounts(t, worker, counts{OOMs: 1})
	// A shell that ignores SIGTERM, stopped: docker's SIGKILL after 1 s (137).
	stubborn := run(t, nil, "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	waitLog(t, stubborn, "ready")
	e.waitCounts(t, stubborn, counts{})
	docker(t, "stop", "-t", "1", worker)
	docker(t, "stop", "-t", "1", stubborn)
	e.waitCounts(t, worker, counts{OOMs: 1, Exited: true, ExitCode: 143})
	e.waitValue(t, "container_last_exit_code", worker, map[string]string{"reason": "signal"}, 143)
	e.waitCounts(t, stubborn, counts{Exited: true, ExitCode: 137})
	e.waitValue(t, "container_last_exit_code", stubborn, map[string]string{"reason": "signal"}, 137)
	for _, id := range []string{worker, stubborn} {
		if _, ok := e.value(t, "container_last_exit_code", id, map[string]string{"reason": "oom_killed"}); ok {
			t.Errorf("%.12s: reason oom_killed", id)
		}
	}
}

// The pod's limit: the kubelet's pod cgroup (here under the harness's
// parent, named as the kubelet names it) has a lower limit than the sum of
// its containers'; a container within its own limit is killed for the pod's.
func TestKillRecordOfAPodLimit(t *testing.T) {
	kernelPrereqs(t)
	e := startContainerdExporter(t, "--kernel")
	cri := criClient(t)
	uid := randomID(8)
	podCgroup := filepath.Join(env.cgroupParent, "kubepods", "pod"+uid)
	dir := filepath.Join("/sys/fs/cgroup/memory", podCgroup)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir); _ = os.Remove(filepath.Dir(dir)) })
	for file, v := range map[string]string{"memory.limit_in_bytes": strconv.Itoa(48 << 20), "memory.memsw.limit_in_bytes": strconv.Itoa(48 << 20)} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil && file == "memory.limit_in_bytes" {
			t.Fatal(err)
		}
	}
	p := runPodIn(t, cri, "shop", "podlimit-0", uid, podCgroup)
	name := "pod-" + randomID(2)
	// 64 MiB in a container limited to 128 MiB, in a pod limited to 48 MiB.
	id := p.start(t, criContainer{name: "app", memory: 128 << 20, script: worker(name) + "; echo done > /tmp/done; sleep 100000"})
	e.waitKill(t, name, map[string]string{
		"container_id": "containerd://" + id, "namespace": "shop", "pod": "podlimit-0", "container": "app",
		"scope": "pod", "limit_bytes": strconv.Itoa(48 << 20), "main_process": "false",
	})
	e.waitContainerdCounts(t, id, counts{OOMs: 1})
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if _, v, ok := s.series("container_oom_kills_by_scope_total", map[string]string{"container_id": "containerd://" + id, "scope": "pod"}); !ok || v != 1 {
			return fmt.Errorf("kills by scope pod: %v (present %v)", v, ok)
		}
		return nil
	})
}
