package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/missing-container-metrics/missing-container-metrics/test/vm/guest/report"
)

// alloc64M is a process that needs 64 MiB at once: busybox's dd allocates
// its block before it reads. Under a 32 MiB limit the OOM killer takes it.
const alloc64M = "dd if=/dev/zero of=/dev/null bs=64M count=1"

// workerScript is a fluentd-like container: two long-lived processes beside
// the shell, and a worker that needs more memory than the container has.
// When the worker is killed alone, the shell lives on (and sleeps); a group
// kill takes all four processes.
const workerScript = "sleep 1000 & sleep 1000 & " + alloc64M + "; echo survived; exec sleep 1000"

// triggeredWorker is workerScript whose worker starts only when the guest
// writes to the FIFO /tmp/go in the container: so that the kill comes while
// the exporter already watches the container. The shell's read is a
// builtin: 3 processes wait, 4 are killed.
const triggeredWorker = "busybox mkfifo /tmp/go; sleep 1000 & sleep 1000 & read x < /tmp/go; " + alloc64M + "; echo survived; exec sleep 1000"

type scenario struct {
	name string
	run  func(g *guest) error
}

// wrapped runs script under a wrapper as pid 1, as tini or dumb-init run a
// workload: it waits for its child and exits with its status (137 when
// the child dies of SIGKILL). The script must hold no single quote.
func wrapped(script string) string { return "sh -c '" + script + "' & wait $!; exit $?" }

var scenarios = []scenario{
	{report.GroupKill, podGroupKill},
	{report.SingleKill, podSingleKill},
	{report.PodLimit, podLevelLimit},
	{report.DockerWorkers, dockerWorkers},
	{report.DockerMain, dockerMain},
	{report.DockerTmpfs, dockerTmpfs},
	{report.DockerManyProcs, dockerManyProcs},
}

func scenarioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Minute)
}

// podGroupKill: kubelet 1.28+ on cgroup v2. The worker's OOM kill takes the
// whole container (a tini-like wrapper as pid 1, the shell under it, two
// sleeps, dd: 5 processes), which exits; the kubelet then makes attempt 1
// of it in the same pod. The kill comes once the exporter has read the
// container's counters.
func podGroupKill(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	const name = report.GroupKill
	p, err := g.rt.runPod(ctx, "oom-group", 0)
	if err != nil {
		return err
	}
	c := podContainer{name: "worker", script: wrapped(triggeredWorker), unified: kubeletOOMGroup}
	id0, err := p.start(ctx, c)
	if err != nil {
		return err
	}
	g.addPodContainer(name, p, c, id0, 5)
	if err := g.trigger(p.containerCgroup(id0), "containerd://"+id0, 4); err != nil {
		return err
	}
	if _, err := g.rt.waitExited(ctx, id0); err != nil {
		return err
	}
	// The kubelet's restart: a new container, attempt 1, that stays up.
	c1 := podContainer{name: "worker", attempt: 1, script: "exec sleep 1000", unified: kubeletOOMGroup}
	id1, err := p.start(ctx, c1)
	if err != nil {
		return err
	}
	g.addPodContainer(name, p, c1, id1, 0)
	return waitProcs(p.containerCgroup(id1), 1)
}

// podSingleKill: the kubelet with singleProcessOOMKill (or before 1.28)
// sets no memory.oom.group: the worker dies, the container lives on.
func podSingleKill(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	p, err := g.rt.runPod(ctx, "oom-single", 0)
	if err != nil {
		return err
	}
	c := podContainer{name: "worker", script: workerScript}
	id, err := p.start(ctx, c)
	if err != nil {
		return err
	}
	g.addPodContainer(report.SingleKill, p, c, id, 1)
	// The worker is gone and the shell has become a sleep: 3 processes.
	return waitKilledThen(p.containerCgroup(id), 1, 3)
}

// podLevelLimit: the pod's memory.max (24 MiB) is below the sum of its
// containers' limits (2 × 32 MiB) and below each: the OOM is the pod's, and
// the kill must be counted in the container whose process was killed ("big",
// 3 processes, memory.oom.group=1), not in its sibling.
func podLevelLimit(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	const name = report.PodLimit
	p, err := g.rt.runPod(ctx, "pod-limit", 24<<20)
	if err != nil {
		return err
	}
	small := podContainer{name: "small", script: "exec sleep 1000", unified: kubeletOOMGroup}
	idSmall, err := p.start(ctx, small)
	if err != nil {
		return err
	}
	g.addPodContainer(name, p, small, idSmall, 0)
	if err := waitProcs(p.containerCgroup(idSmall), 1); err != nil {
		return err
	}
	big := podContainer{name: "big", script: "sleep 1000 & " + alloc64M + "; echo survived; exec sleep 1000", unified: kubeletOOMGroup}
	idBig, err := p.start(ctx, big)
	if err != nil {
		return err
	}
	g.addPodContainer(name, p, big, idBig, 3)
	_, err = g.rt.waitExited(ctx, idBig)
	return err
}

// dockerWorkers: a Docker container (Docker sets no memory.oom.group) whose
// worker is OOM-killed three times while the shell lives on.
func dockerWorkers(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	script := "for i in 1 2 3; do " + alloc64M + "; done; echo survived; exec sleep 1000"
	_, cg, err := g.dockerRun(ctx, report.DockerWorkers, "workers", script, 3, 32<<20)
	if err != nil {
		return err
	}
	return waitKilledThen(cg, 3, 1)
}

// dockerMain: the main process of a Docker container OOM-killed: exit code
// 137. Its cgroup goes with it; the kernel's count stays in the parent's
// counters, which hold the workers' container's too (still there: its own
// counters tell them apart).
func dockerMain(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	// A second before the allocation: a kill within milliseconds of the
	// start can be stamped (the kernel log's clock made wall time) before
	// the start (Docker's clock), and its exit's reason is then not told
	// right (docs/metrics.md: a known limit); this scenario is of the kill
	// of a main process, not of that race.
	id, _, err := g.dockerRun(ctx, report.DockerMain, "main", "sleep 1; exec "+alloc64M, 1, 32<<20)
	if err != nil {
		return err
	}
	return waitFor(2*time.Minute, func() error {
		res, err := g.rt.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		if st := res.Container.State; st.Status != container.StateExited {
			return fmt.Errorf("main is %s", st.Status)
		}
		return nil
	})
}

// dockerTmpfs: a Docker container fills its /dev/shm, a tmpfs (Docker's
// default 64 MiB), past its 32 MiB limit: what is written there is charged
// to it as shmem and held by no process. dd, the largest process, is
// killed; the shell removes the file and lives on.
func dockerTmpfs(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	script := "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64; busybox rm -f /dev/shm/fill; echo survived; exec sleep 1000"
	_, cg, err := g.dockerRun(ctx, report.DockerTmpfs, "tmpfs", script, 1, 32<<20)
	if err != nil {
		return err
	}
	return waitKilledThen(cg, 1, 1)
}

// What each small process of dockerManyProcs holds: busybox's dd fills a
// buffer of that size from /dev/zero, then blocks writing it to a FIFO
// that nothing reads. A holder holds holdBytes; near the limit a tiny one
// tinyBytes, and whichever of them the kill comes in, the holder it takes
// frees more than that one still needs, even before the victim has exited
// (only its anonymous memory is reaped at once): it is the only kill.
// Holders of the same size at the end were seen killed twice.
const (
	holdBytes = 400 << 10
	tinyBytes = 8 << 10
)

// manyProcsScript is dockerManyProcs' shell: it holds the FIFO /tmp/hold
// open for reading and writing (so that it opens at once, and nothing reads
// it), and for each line "N BYTES ADJ" the guest writes to the FIFO /tmp/go
// it starts N processes holding BYTES, with oom_score_adj ADJ. When the
// guest closes /tmp/go it waits for them, for ever, with builtins only: at
// the limit it allocates nothing more. The holders put themselves before
// the shell and the tiny ones in the OOM killer's choice (oom_score_adj
// 100, as a pool's workers often are): the shell's resident busybox is
// larger than a holder's (1.7 MiB, 1.4 MiB), and its kill would end the
// container.
const manyProcsScript = "busybox mkfifo /tmp/go /tmp/hold; exec 3<>/tmp/hold; " +
	"while read n bs adj; do i=0; while [ $i -lt $n ]; do " +
	"(echo $adj > /proc/self/oom_score_adj; exec dd if=/dev/zero bs=$bs count=1 >&3 2>/dev/null) & i=$((i+1)); " +
	"done; done < /tmp/go; wait"

// dockerManyProcs: many small processes fill a Docker container up to its
// 32 MiB limit, as a fork bomb or a pool of workers does, until the OOM
// killer takes one of them, or, where the kill came as a batch of them
// started (in CI, beside the other tests' load), more: the scenario then
// says how many the kernel killed, which every check compares with.
func dockerManyProcs(g *guest) error {
	ctx, cancel := scenarioContext()
	defer cancel()
	id, cg, err := g.dockerRun(ctx, report.DockerManyProcs, "many", manyProcsScript, 1, 32<<20)
	if err != nil {
		return err
	}
	n, err := startHolders(cg)
	killed := uint64(0)
	if err == nil {
		// Settled: every process started but those killed has filled its
		// buffer and waits, and the shell waits for them; nothing more
		// allocates.
		err = waitFor(2*time.Minute, func() error {
			ev, err := readEvents(cg)
			if err != nil {
				return err
			}
			if killed = ev["oom_kill"]; killed == 0 || killed > uint64(n) {
				return fmt.Errorf("%s: oom_kill %d of %d processes", cg, killed, n)
			}
			return holdersFilled(cg, n-int(killed))
		})
	}
	for i := range g.rep.Containers {
		if c := &g.rep.Containers[i]; c.ID == "docker://"+id {
			c.Procs, c.Killed = n, max(1, int(killed))
		}
	}
	return err
}

// startHolders has the shell of manyProcsScript in cgroup cg start
// processes until the kernel OOM-kills one, and returns how many it
// started. A batch starts once every process before it has filled its
// buffer: holders, half of those there is room for (by what each took so
// far) less two, while there is room for three; then tiny ones, one at a
// time. (One batch of all there seemed room for overshot: three holders
// were killed as they filled.)
func startHolders(cg string) (int, error) {
	var fifo string
	err := waitFor(2*time.Minute, func() error {
		var err error
		fifo, err = findFIFO(cg)
		return err
	})
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // once the shell reads it
	if err != nil {
		return 0, err
	}
	defer f.Close() // the shell then waits for its processes
	base, err := readCgroupUint(cg, "memory.current")
	if err != nil {
		return 0, err
	}
	limit, err := readCgroupUint(cg, "memory.max")
	if err != nil {
		return 0, err
	}
	holders, tiny := 0, 0
	for holders+tiny < 300 { // 32 MiB holds fewer than 100 of them
		line := fmt.Sprintf("1 %d 0\n", tinyBytes)
		room := 3
		if holders > 0 {
			used, err := readCgroupUint(cg, "memory.current")
			if err != nil {
				return holders + tiny, err
			}
			room = 0
			if each := (used - min(used, base)) / uint64(holders); each > 0 && limit > used {
				room = int((limit - used) / each)
			}
		}
		if room >= 3 {
			n := max(1, (room-2)/2)
			line = fmt.Sprintf("%d %d 100\n", n, holdBytes)
			holders += n
		} else {
			tiny++
		}
		if _, err := f.WriteString(line); err != nil {
			return holders + tiny, err
		}
		fmt.Printf("guest: %s: %d holders and %d tiny processes started\n", report.DockerManyProcs, holders, tiny)
		killed, gone := false, error(nil)
		err := waitFor(2*time.Minute, func() error {
			ev, err := readEvents(cg)
			if errors.Is(err, os.ErrNotExist) {
				gone = err // the container ended: no use waiting
				return nil
			}
			if err != nil {
				return err
			}
			if killed = ev["oom_kill"] > 0; killed {
				return nil
			}
			return holdersFilled(cg, holders+tiny)
		})
		if err == nil {
			err = gone
		}
		if err != nil || killed {
			return holders + tiny, err
		}
	}
	return holders + tiny, fmt.Errorf("%s: no OOM kill after %d processes", cg, holders+tiny)
}

// holdersFilled says whether n processes in cgroup cg have filled their
// buffer (dd, and the bytes it read, /proc/PID/io's rchar: one read, of
// tinyBytes at least), and the shell is the only other.
func holdersFilled(cg string, n int) error {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, cg, "cgroup.procs"))
	if err != nil {
		return err
	}
	pids := strings.Fields(string(b))
	filled := 0
	for _, pid := range pids {
		// The shell reads more than tinyBytes itself (8 KiB, seen in the VM).
		comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
		io, err := os.ReadFile(filepath.Join("/proc", pid, "io"))
		if err != nil || strings.TrimSpace(string(comm)) != "dd" {
			continue // gone, the shell, or a holder not yet dd
		}
		for _, l := range strings.Split(string(io), "\n") {
			if v, ok := strings.CutPrefix(l, "rchar: "); ok {
				if r, _ := strconv.ParseUint(v, 10, 64); r >= tinyBytes {
					filled++
				}
			}
		}
	}
	if filled != n || len(pids) != n+1 {
		return fmt.Errorf("%s: %d processes, %d of them filled, want %d and the shell", cg, len(pids), filled, n)
	}
	return nil
}

// readCgroupUint reads a cgroup file of one number, such as memory.current.
func readCgroupUint(cg, file string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, cg, file))
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", cg, file, err)
	}
	return v, nil
}

// dockerRun runs a busybox container with a memory limit and no swap, in
// Docker's own cgroup parent; it returns its id and cgroup. killed is how
// many processes the OOM killer is to kill in it.
func (g *guest) dockerRun(ctx context.Context, scenario, name, script string, killed int, limit int64) (string, string, error) {
	res, err := g.rt.docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: image, Cmd: []string{"sh", "-c", script}},
		HostConfig: &container.HostConfig{
			NetworkMode: "none",
			Resources:   container.Resources{Memory: limit, MemorySwap: limit},
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("docker create %s: %w", name, err)
	}
	id := res.ID
	// Where Docker puts it: with the systemd driver a scope in
	// system.slice, with cgroupfs a directory named by the id in /docker.
	parent, cg := "/docker", "/docker/"+id
	if g.driver == "systemd" {
		parent, cg = "/system.slice", "/system.slice/docker-"+id+".scope"
	}
	g.rep.Containers = append(g.rep.Containers, report.Container{
		Scenario: scenario, Name: name, ID: "docker://" + id, Cgroup: cg, Parent: parent, Killed: killed,
	})
	if _, err := g.rt.docker.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return "", "", fmt.Errorf("docker start %s: %w", name, err)
	}
	return id, cg, nil
}

func (g *guest) addPodContainer(scenario string, p *pod, c podContainer, id string, killed int) {
	g.rep.Containers = append(g.rep.Containers, report.Container{
		Scenario: scenario, Name: c.name, Pod: p.config.Metadata.Name, Attempt: c.attempt,
		ID: "containerd://" + id, Cgroup: p.containerCgroup(id), Parent: p.cgroup,
		Killed: killed, Unified: c.unified,
	})
}

// trigger starts the worker of triggeredWorker in the container of cgroup
// cg, once its procs processes wait and every exporter shows the container
// with the kernel's counters read (container_oom_group_kills_total is there).
func (g *guest) trigger(cg, containerID string, procs int) error {
	if err := waitProcs(cg, procs); err != nil {
		return err
	}
	for _, e := range g.exps {
		err := waitFor(2*time.Minute, func() error {
			s, err := e.scrape()
			if err != nil {
				return err
			}
			if _, ok := s[containerID].Get(report.GroupKills); !ok {
				return fmt.Errorf("%.25s…: no %s yet: exporter %s has not read its counters", containerID, report.GroupKills, e.cfg.name)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	fifo, err := findFIFO(cg)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("go\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// findFIFO is the path of the FIFO /tmp/go in the container of cgroup cg,
// through one of its processes' root.
func findFIFO(cg string) (string, error) {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, cg, "cgroup.procs"))
	if err != nil {
		return "", err
	}
	for _, pid := range strings.Fields(string(b)) {
		p := filepath.Join("/proc", pid, "root/tmp/go")
		if st, err := os.Stat(p); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: no FIFO /tmp/go in the container", cg)
}

// waitKilledThen waits until the kernel has counted kills OOM kills in the
// cgroup and procs processes are left in it.
func waitKilledThen(cg string, kills uint64, procs int) error {
	return waitFor(2*time.Minute, func() error {
		ev, err := readEvents(cg)
		if err != nil {
			return err
		}
		if ev["oom_kill"] < kills {
			return fmt.Errorf("%s: oom_kill %d, want %d", cg, ev["oom_kill"], kills)
		}
		return countProcs(cg, procs)
	})
}

func waitProcs(cg string, procs int) error {
	return waitFor(2*time.Minute, func() error { return countProcs(cg, procs) })
}

func countProcs(cg string, want int) error {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, cg, "cgroup.procs"))
	if err != nil {
		return err
	}
	if n := len(strings.Fields(string(b))); n != want {
		return fmt.Errorf("%s: %d processes, want %d", cg, n, want)
	}
	return nil
}

// readEvents reads a cgroup's memory.events.
func readEvents(cg string) (report.Events, error) {
	return readEventsFile(cg, "memory.events")
}

// readEventsFile reads a cgroup's memory.events or memory.events.local.
func readEventsFile(cg, file string) (report.Events, error) {
	b, err := os.ReadFile(filepath.Join(cgroupRoot, cg, file))
	if err != nil {
		return nil, err
	}
	ev := report.Events{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %q", cg, file, l)
		}
		ev[f[0]] = v
	}
	return ev, nil
}

// readCgroups reads memory.events of every container's cgroup that is still
// there and of every parent, and memory.events.local of every pod's.
func (g *guest) readCgroups() {
	for _, c := range g.rep.Containers {
		if c.Pod != "" {
			ev, err := readEventsFile(c.Parent, "memory.events.local")
			if err != nil {
				g.fail("%s: %v", c.Name, err)
			}
			g.rep.PodEvents[c.Parent] = ev
		}
		for _, cg := range []string{c.Cgroup, c.Parent} {
			if cg == "" {
				continue
			}
			ev, err := readEvents(cg)
			switch {
			case err == nil:
				g.rep.Cgroups[cg] = ev
			case errors.Is(err, os.ErrNotExist) && cg == c.Cgroup:
			default:
				g.fail("%s: %v", c.Name, err)
			}
		}
	}
}

// refreshRuntimes records what the runtimes say of every container now.
func (g *guest) refreshRuntimes() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range g.rep.Containers {
		c := &g.rep.Containers[i]
		id := c.ID[strings.Index(c.ID, "://")+3:]
		if c.Pod != "" {
			res, err := g.rt.cri.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
			if err != nil {
				g.fail("ContainerStatus %s: %v", c.Name, err)
				continue
			}
			st := res.Status
			c.Runtime = report.Runtime{State: st.State.String(), ExitCode: int(st.ExitCode), Reason: st.Reason}
			continue
		}
		res, err := g.rt.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			g.fail("docker inspect %s: %v", c.Name, err)
			continue
		}
		st := res.Container.State
		c.Runtime = report.Runtime{State: string(st.Status), ExitCode: st.ExitCode, OOMKilled: st.OOMKilled,
			OOMEvents: g.rt.dockerEvents.count(id, events.ActionOOM)}
	}
}

// dockerEvents counts Docker's container events by container and action,
// from when dockerd answered.
type dockerEvents struct {
	mu sync.Mutex
	n  map[string]map[events.Action]int
}

func (rt *runtimes) followDockerEvents() {
	rt.dockerEvents = &dockerEvents{n: map[string]map[events.Action]int{}}
	res := rt.docker.Events(context.Background(), client.EventsListOptions{Filters: make(client.Filters).Add("type", string(events.ContainerEventType))})
	go func() {
		for m := range res.Messages {
			rt.dockerEvents.mu.Lock()
			if rt.dockerEvents.n[m.Actor.ID] == nil {
				rt.dockerEvents.n[m.Actor.ID] = map[events.Action]int{}
			}
			rt.dockerEvents.n[m.Actor.ID][m.Action]++
			rt.dockerEvents.mu.Unlock()
		}
	}()
}

func (d *dockerEvents) count(id string, a events.Action) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[id][a]
}

// oomRecords are the OOM killer's records in the kernel log, each as
// "SEQ,MICROSECONDS;MESSAGE". The device is read with plain system calls:
// os.File would wait in the poller for more.
func oomRecords() []string {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return []string{"kmsg: " + err.Error()}
	}
	defer unix.Close(fd)
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE {
			continue // overwritten records: read on
		}
		if err != nil || n <= 0 {
			break // EAGAIN: no more
		}
		rec := string(buf[:n])
		head, msg, _ := strings.Cut(rec, ";")
		msg = strings.SplitN(msg, "\n", 2)[0]
		// The oom-kill line is printed in pieces; another CPU's message in
		// between splits it over records.
		if last := len(out) - 1; last >= 0 && strings.Contains(out[last], ";oom-kill:") &&
			!strings.Contains(out[last], ",uid=") && (strings.HasPrefix(msg, ",") || strings.HasPrefix(msg, "/")) {
			out[last] += msg
			continue
		}
		// "PRIORITY,SEQ,MICROSECONDS,FLAGS": the sequence number and the time.
		f := strings.Split(head, ",")
		if len(f) < 3 {
			continue
		}
		for _, s := range []string{"oom-kill:", "Killed process", "are going to be killed", "invoked oom-killer", "out of memory"} {
			if strings.Contains(msg, s) {
				out = append(out, f[1]+","+f[2]+";"+msg)
				break
			}
		}
	}
	return out
}
