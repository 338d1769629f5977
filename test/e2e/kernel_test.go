package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The kernel's own account of OOM kills, on this host's cgroup v1: the
// counters of each container's memory cgroup and the victims named in
// /dev/kmsg. (cgroup v2 is tested in a VM: test/vm.)
//
// These tests do not run in parallel: the load test (TestChurn) counts every
// container of the harness's dockerd, and they run before it starts.

// worker runs a process named name (its comm, as the kernel log names it)
// that needs more than the 32 MiB limit and is OOM-killed, once: busybox's
// dd through a link called name (the kernel names a process by the file it
// runs; busybox picks the applet by argv[0]).
func worker(name string) string {
	return fmt.Sprintf(`ln -sf /bin/busybox /tmp/%[1]s; (exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1)`, name)
}

// kernelPrereqs fails (under CI) or skips the test when the kernel's files
// cannot be read here.
func kernelPrereqs(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control"); err != nil {
		missing = append(missing, "a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory")
	}
	if f, err := os.Open("/dev/kmsg"); err != nil {
		missing = append(missing, "a readable /dev/kmsg (root)")
	} else {
		f.Close()
	}
	if len(missing) == 0 {
		return
	}
	msg := "kernel tests need " + strings.Join(missing, " and ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (a missing prerequisite is a failure under CI)")
	}
	t.Skip(msg)
}

// kernelKills reads the container's cgroup counter as the kernel keeps it.
func kernelKills(id string) (int, error) {
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", env.cgroupParent, id, "memory.oom_control"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no oom_kill in memory.oom_control of %.12s", id)
}

// series reads one series of the exporter for the container (extra labels in match).
func (e *exporter) value(t *testing.T, name, id string, match map[string]string) (float64, bool) {
	t.Helper()
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"container_id": "docker://" + id}
	for k, v := range match {
		m[k] = v
	}
	_, v, ok := s.series(name, m)
	return v, ok
}

// waitValue waits until the exporter shows want for a series of the container.
func (e *exporter) waitValue(t *testing.T, name, id string, match map[string]string, want float64) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		got, ok := e.value(t, name, id, match)
		if !ok || got != want {
			return fmt.Errorf("%s%v of %.12s: %v (present %v), want %v", name, match, id, got, ok, want)
		}
		return nil
	})
}

// waitNamed waits until the exporter names process as the victim of want
// kills in the Docker container id. The kernel reports at most ten kills
// in five seconds, host-wide (the suite's other tests kill too); a kill it
// did not report in full names no cgroup, and its process is gone, so the
// exporter may not name it: then at least the kills the kernel reported
// must be named, and never more than want.
func (e *exporter) waitNamed(t *testing.T, id, process string, want float64) {
	t.Helper()
	match := map[string]string{"process": process}
	eventually(t, 30*time.Second, func() error {
		got, _ := e.value(t, "container_oom_kills_by_process_total", id, match)
		if got == want {
			return nil
		}
		reported := kmsgReportedIn(t, id, process)
		if got > want || got < min(reported, want) || reported >= want {
			return fmt.Errorf("container_oom_kills_by_process_total%v of %.12s: %v, want %v (the kernel reported %v of them in full)", match, id, got, want, reported)
		}
		t.Logf("%s: %v of %v kills named: the kernel reported %v in full", process, got, want, reported)
		return nil
	})
}

// kmsgReportedIn counts the kills of process that the kernel log, as it is
// now, reported in full in a cgroup whose path names the container id.
func kmsgReportedIn(t *testing.T, id, process string) float64 {
	t.Helper()
	n := 0.0
	for _, k := range kmsgKillList(t) {
		if k.reported && k.name == process && strings.Contains(k.cgroup, id) {
			n++
		}
	}
	return n
}

// dockerOOMEvents counts the oom events dockerd reported for a container.
func dockerOOMEvents(t *testing.T, id string, since time.Time) int {
	t.Helper()
	out := docker(t, "events", "--since", strconv.FormatInt(since.Unix()-1, 10), "--until", strconv.FormatInt(time.Now().Unix()+1, 10),
		"--filter", "container="+id, "--filter", "event=oom", "--format", "{{.Action}}")
	return strings.Count(out, "oom")
}

// Five workers killed within a second count five: Docker reports OOM events,
// not kills, and says so many more times; the kernel's counter decides.
func TestKernelFiveKillsWithinASecond(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	start := time.Now()
	id := run(t, nil, `while [ ! -e /tmp/go ]; do sleep 0.05; done; `+
		`for i in 1 2 3 4 5; do dd if=/dev/zero of=/dev/null bs=64M count=1 & done; wait; echo done; sleep 100000`)
	// The kernel's counter, polled closely from the moment the workers start.
	if n, err := kernelKills(id); err != nil || n != 0 {
		t.Fatalf("before the workers: %d kills (%v)", n, err)
	}
	docker(t, "exec", id, "touch", "/tmp/go")
	var first, fifth time.Time
	for deadline := time.Now().Add(60 * time.Second); fifth.IsZero(); time.Sleep(2 * time.Millisecond) {
		n, err := kernelKills(id)
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("kernel counted %d kills (%v)", n, err)
		}
		if n > 0 && first.IsZero() {
			first = time.Now()
		}
		if n >= 5 {
			fifth = time.Now()
		}
	}
	waitLog(t, id, "done")
	e.waitCounts(t, id, counts{OOMs: 5})
	e.waitNamed(t, id, "dd", 5)
	if ts, ok := e.value(t, "container_last_oom_timestamp_seconds", id, nil); !ok || ts < float64(start.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last OOM timestamp %v (present %v), want a time since %v", ts, ok, start)
	}
	if n, _ := kernelKills(id); n != 5 {
		t.Fatalf("the kernel counts %d kills now, want 5", n)
	}
	t.Logf("the kernel counted the 5 kills within %v (polled every 2ms); dockerd reported %d oom events",
		fifth.Sub(first).Round(time.Millisecond), dockerOOMEvents(t, id, start))
}

// The kernel log names the victim: the worker, not the container's main
// process. Where the kernel rate-limited a kill's report (ten in five
// seconds, host-wide: the suite's other tests kill too), its "Killed
// process" line names the process but not its cgroup, and the process is
// gone: the kill counts, and its name may be missing, never wrong.
func TestKernelVictimProcessName(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	sfx := fmt.Sprintf("%05x", time.Now().UnixNano()&0xfffff) // names of this run's kills alone
	ruby, gc := "ruby-"+sfx, "gc-"+sfx
	id := run(t, []string{"--name", "fluentd-" + strconv.Itoa(os.Getpid())},
		worker(ruby)+"; "+worker(ruby)+"; "+worker(gc)+"; echo done; sleep 100000")
	waitLog(t, id, "done")
	e.waitCounts(t, id, counts{OOMs: 3})
	e.waitNamed(t, id, ruby, 2)
	e.waitNamed(t, id, gc, 1)
	if _, ok := e.value(t, "container_oom_kills_by_process_total", id, map[string]string{"process": "sh"}); ok {
		t.Error("the main process is named as a victim")
	}
}

// After the exporter restarts, a live container's count is the kernel's:
// the kills before, and the kills while no exporter ran. Docker has nothing
// to say of them: its OOMKilled flag is set only when the main process dies.
func TestKernelCountsSurviveExporterRestart(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	dir := "/tmp/mcm-e2e-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// Three kills, then more whenever the test creates a file in the container.
	id := run(t, nil, fmt.Sprintf(`for i in 1 2 3; do %s; done; echo done; mkdir -p %[2]s; `+
		`while :; do if [ -e %[2]s/go ]; then rm %[2]s/go; %[3]s; %[3]s; echo again; fi; sleep 0.1; done`,
		worker("ruby-worker"), dir, worker("late-worker")))
	waitLog(t, id, "done")
	e.waitCounts(t, id, counts{OOMs: 3})
	e.waitNamed(t, id, "ruby-worker", 3)
	e.stop()

	// Two kills while no exporter runs.
	docker(t, "exec", id, "touch", dir+"/go")
	waitLog(t, id, "again")
	if n, err := kernelKills(id); err != nil || n != 5 {
		t.Fatalf("kernel counts %d (%v), want 5", n, err)
	}

	restarted := startExporter(t)
	began := time.Now()
	restarted.waitCounts(t, id, counts{OOMs: 5})
	t.Logf("the restarted exporter showed the kernel's 5 after %v", time.Since(began).Round(time.Millisecond))
	// The victims' names come back from the kernel's log buffer while it
	// still holds them (other tests' OOM reports overwrite it quickly).
	if v, ok := restarted.value(t, "container_oom_kills_by_process_total", id, map[string]string{"process": "late-worker"}); ok {
		t.Logf("late-worker kills named after the restart: %v", v)
	}
}

// The main process killed: the container exits 137 and its cgroup goes;
// the kill counts once.
func TestKernelMainProcessKilled(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	id := run(t, nil, "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	waitInspect(t, id, "{{.State.Status}}", "exited")
	e.waitCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})
	e.waitNamed(t, id, "dd", 1)
}

// A restart policy restarts an OOM-killed container twice: three runs, three
// cgroups at the same path, one kill in each.
func TestKernelRestartsMakeNewCgroups(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	id := run(t, []string{"--restart", "on-failure:2"}, "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	waitInspect(t, id, "{{.State.Status}} {{.RestartCount}}", "exited 2")
	e.waitCounts(t, id, counts{OOMs: 3, Restarts: 2, Exited: true, ExitCode: 137})
	e.waitNamed(t, id, "dd", 3)
}

// With no runtime to ask, containers are recognised from their cgroup
// path alone and exported with what it tells: container_id with the
// runtime (here from the shim that runs them), no name, no restarts.
func TestKernelWithoutRuntime(t *testing.T) {
	kernelPrereqs(t)
	id := run(t, nil, worker("orphan-worker")+"; echo done; sleep 100000")
	waitLog(t, id, "done")
	e := startExporter(t, "--docker.host=unix:///nonexistent/docker.sock")
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		labels, v, ok := s.series("container_ooms_total", map[string]string{"container_id": "docker://" + id})
		if !ok || v != 1 {
			return fmt.Errorf("kernel-only container: ooms %v (present %v)", v, ok)
		}
		if labels["name"] != "" || labels["container_id"] != "docker://"+id || len(labels) != 1 {
			return errStop{fmt.Errorf("labels %v", labels)}
		}
		if _, _, ok := s.series("container_restarts_total", map[string]string{"container_id": "docker://" + id}); ok {
			return errStop{fmt.Errorf("restarts exported for a container no runtime reported")}
		}
		_, up, _ := s.series("missing_container_metrics_source_up", map[string]string{"source": "cgroup"})
		_, kmsgUp, _ := s.series("missing_container_metrics_source_up", map[string]string{"source": "kmsg"})
		if up != 1 || kmsgUp != 1 {
			return fmt.Errorf("kernel sources up: cgroup %v kmsg %v", up, kmsgUp)
		}
		return nil
	})
}

// A kill in a cgroup that is no container's, at that cgroup's own limit (a
// systemd service's MemoryMax), is that cgroup's: not the node's, whose
// memory did not run out, and not unknown. The record says so, with the
// cgroup and its limit.
func TestKernelKillInACgroupOfNoContainer(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	name := "mcm-host-" + strconv.Itoa(os.Getpid()%100000)
	if len(name) > 15 {
		name = name[:15]
	}
	dir := filepath.Join("/sys/fs/cgroup/memory", env.cgroupParent, "host-service-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	for file, v := range map[string]string{"memory.limit_in_bytes": "33554432", "memory.memsw.limit_in_bytes": "33554432"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil && file == "memory.limit_in_bytes" {
			t.Fatal(err)
		}
	}
	// The shell moves itself into the cgroup and runs dd under the name.
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink("/bin/busybox", link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("busybox", "sh", "-c", fmt.Sprintf(
		`echo $$ > %s/cgroup.procs; exec -a dd %s if=/dev/zero of=/dev/null bs=64M count=1`, dir, link))
	if err := cmd.Run(); err == nil {
		t.Fatal("the host process was not killed")
	}
	cgroup := strings.TrimPrefix(dir, "/sys/fs/cgroup/memory")
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		if _, v, ok := s.series("cgroup_oom_kills_total", map[string]string{"cgroup": cgroup}); !ok || v != 1 {
			return fmt.Errorf("cgroup_oom_kills_total{cgroup=%q} %v (present %v)", cgroup, v, ok)
		}
		if _, v, ok := s.series("host_oom_kills_total", map[string]string{"process": name}); ok {
			return errStop{fmt.Errorf("host_oom_kills_total{process=%q} %v: a kill at a cgroup's own limit counted as the node's", name, v)}
		}
		kills, err := e.kills("limit=100")
		if err != nil {
			return err
		}
		for _, k := range kills {
			if k.Victim == nil || k.Victim.Name != name {
				continue
			}
			if k.Place != "cgroup" || k.Cgroup != cgroup || k.Container != nil || k.Scope != "cgroup" || k.LimitCgroup != cgroup ||
				k.LimitBytes == nil || *k.LimitBytes != 32<<20 {
				return errStop{fmt.Errorf("the record: %+v", k)}
			}
			return nil
		}
		return fmt.Errorf("no record of %s in /api/v1/kills", name)
	})
}

// Anyone who may write to /dev/kmsg (root in a container that has it, a
// daemon) can write a line that reads like the kernel's OOM report, naming
// the pid of a process in another container. The kernel gives such a record
// a userspace facility, whatever it claims; the reader counts none of them.
// A real kill after them shows that the reader read past them.
func TestKernelForgedLogLinesAreNotKills(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	target := run(t, nil, "sleep 100000")
	pid := inspect(t, target, "{{.State.Pid}}")
	real := run(t, nil, "while [ ! -e /tmp/go ]; do sleep 0.05; done; "+worker("real-victim")+"; echo done; sleep 100000")
	e.waitCounts(t, target, counts{})
	e.waitCounts(t, real, counts{})

	kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kmsg.Close()
	cg := filepath.Join(env.cgroupParent, target)
	for _, line := range []string{
		"Memory cgroup out of memory: Killed process " + pid + " (forged-a) total-vm:1000kB, anon-rss:10kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
		// A priority that claims the kernel's facility: the kernel makes it LOG_USER.
		"<3>oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + cg + ",task_memcg=" + cg + ",task=forged-b,pid=" + pid + ",uid=0",
		"<0>Memory cgroup out of memory: Killed process " + pid + " (forged-b) total-vm:1000kB, anon-rss:10kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
		"<0>Out of memory: Killed process 1 (forged-host) total-vm:1000kB, anon-rss:10kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0",
	} {
		if _, err := kmsg.Write([]byte(line + "\n")); err != nil {
			t.Fatalf("write /dev/kmsg: %v", err)
		}
	}
	docker(t, "exec", real, "touch", "/tmp/go")
	waitLog(t, real, "done")
	e.waitCounts(t, real, counts{OOMs: 1})
	e.waitNamed(t, real, "real-victim", 1)

	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.containerCounts(target); c.OOMs != 0 {
		t.Errorf("forged lines counted as kills of %.12s: %v", target, c)
	}
	for _, name := range []string{"forged-a", "forged-b"} {
		if _, v, ok := s.series("container_oom_kills_by_process_total", map[string]string{"process": name}); ok {
			t.Errorf("a forged victim %q is counted: %v", name, v)
		}
	}
	if _, v, ok := s.series("host_oom_kills_total", map[string]string{"process": "forged-host"}); ok {
		t.Errorf("a forged host kill is counted: %v", v)
	}
}

// A tenant whose processes rename themselves and are OOM-killed again and
// again must not add a series at every kill: a container has at most 10
// victims' names, and further kills count under process="other", none lost.
// The kills are 0.7 s apart: the kernel logs at most ten OOM reports in
// five seconds, host-wide, and a victim whose report it left out has no
// name (it still counts in container_ooms_total).
func TestKernelVictimNamesAreBounded(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	const kills = 16
	var script strings.Builder
	for i := range kills {
		fmt.Fprintf(&script, "%s; sleep 0.7; ", worker(fmt.Sprintf("rename-%02d", i)))
	}
	id := run(t, nil, script.String()+"echo done; sleep 100000")
	waitLog(t, id, "done")
	e.waitCounts(t, id, counts{OOMs: kills})
	eventually(t, 30*time.Second, func() error {
		s, err := e.scrape()
		if err != nil {
			return err
		}
		var series, named, other float64
		for _, m := range s.Families["container_oom_kills_by_process_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["container_id"] != "docker://"+id {
				continue
			}
			series++
			named += m.GetCounter().GetValue()
			if labels["process"] == "other" {
				other = m.GetCounter().GetValue()
			}
		}
		if series > 11 {
			return errStop{fmt.Errorf("%v series for %v named kills: more than 10 names and other", series, named)}
		}
		if named < 11 || series != 11 || other != named-10 {
			return fmt.Errorf("%v series of %v named kills, %v under other; want 11 (10 names and other) of at least 11, the kills beyond 10 names under other", series, named, other)
		}
		t.Logf("%d kills under %d names: %v named, in %v series", kills, kills, named, series)
		return nil
	})
}

// A process name is any 15 bytes, invalid UTF-8 too (Docker's and
// containerd's APIs carry only valid UTF-8, the kernel log does not): the
// label value gets U+FFFD and the scrape stays valid.
func TestKernelInvalidUTF8ProcessName(t *testing.T) {
	kernelPrereqs(t)
	e := startExporter(t)
	// The name's bytes are made in the container: the docker CLI sends the
	// script as JSON, which would replace them.
	id := run(t, nil, `n=$(printf 'bad\377\376name'); ln -sf /bin/busybox "/tmp/$n"; `+
		`(exec -a dd "/tmp/$n" if=/dev/zero of=/dev/null bs=64M count=1); echo done; sleep 100000`)
	waitLog(t, id, "done")
	e.waitValue(t, "container_oom_kills_by_process_total", id, map[string]string{"process": "bad\uFFFDname"}, 1)
	s, err := e.scrape()
	if err != nil {
		t.Fatal(err)
	}
	promtoolCheckMetrics(t, s.Text)
}
