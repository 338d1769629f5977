// Package report is what the guest program of the runtimes VM test
// (test/vm/guest) saw inside the VM: the containers it made, the kernel's own
// counters of their cgroups, what the runtimes said, and what the exporter
// showed. The guest writes it as JSON; the test on the host decodes it and
// checks it.
package report

import (
	"fmt"
	"sort"
	"strings"
)

// Report is one boot of the VM.
type Report struct {
	Driver     string            // cgroup driver: "systemd" or "cgroupfs"
	Init       string            // what runs as PID 1
	Boot       float64           // seconds from the kernel's start to the guest program's
	Versions   map[string]string // kernel, containerd, runc, dockerd
	Steps      []Step            // what took how long, in order
	Containers []Container
	// Cgroups holds memory.events of every cgroup the checks need, read
	// once the scenarios were over (and, for a container's cgroup that is
	// removed at its exit, never): by path from the hierarchy's root.
	Cgroups map[string]Events
	// PodEvents holds memory.events.local of every pod's cgroup, read
	// with Cgroups: the hits of the pod's own limit (max).
	PodEvents map[string]Events
	// Scrapes are the exporters' series by container_id
	// (host_oom_kills_total under ""), by exporter (WithKmsg, WithoutKmsg)
	// and by when: "before" the exporters restarted, and "after".
	Scrapes map[string]map[string]map[string]Series
	// Records are the exporters' kill records (/api/v1/kills) before their
	// restart, by exporter.
	Records map[string][]Record
	// KernelLog are the OOM killer's records in the kernel log, each as
	// "SEQ,MICROSECONDS;MESSAGE".
	KernelLog []string
	Errors    []string // what failed in the guest
	Logs      map[string]string
}

// The scenarios, as Container.Scenario names them.
const (
	// GroupKill: a pod's container with memory.oom.group=1 (kubelet 1.28+
	// on cgroup v2) whose worker is OOM-killed, which takes the whole
	// container; then the kubelet's restart, attempt 1.
	GroupKill = "group-kill"
	// SingleKill: the same without memory.oom.group (singleProcessOOMKill):
	// the worker dies, the container lives on.
	SingleKill = "single-process-kill"
	// PodLimit: the pod's memory.max below its containers' limits; the
	// kill must be counted in the container whose process died.
	PodLimit = "pod-limit"
	// DockerWorkers: a Docker container whose worker is killed 3 times.
	DockerWorkers = "docker-workers"
	// DockerMain: a Docker container whose main process is killed.
	DockerMain = "docker-main"
	// DockerTmpfs: a Docker container that fills its /dev/shm, a tmpfs,
	// past its limit: shmem held the memory, no process's own.
	DockerTmpfs = "docker-tmpfs"
	// DockerManyProcs: a Docker container that starts small processes
	// until one is killed: many held the memory, none much of it.
	DockerManyProcs = "docker-many-processes"
)

// Record is one kill record of /api/v1/kills, as the checks read it.
type Record struct {
	ContainerID string   // "" for a kill in no container or not placed
	Place       string   // container, host, unplaced
	Process     string   // the victim's name
	Outcome     string   // ended, lived_on, or "" where not known
	Members     []string // the names of a group kill's members
	Group       string   // the cgroup of a group kill
	LimitCgroup string
	HeldBy      string // what held the memory, in a sentence
	Tasks       int    // the tasks of the report's dump
	Listed      int    // the tasks the record lists: the largest
	AnonBytes   uint64 // the breakdown's anonymous memory
	ShmemBytes  uint64 // the breakdown's shmem
}

// Step is a phase of the boot and its duration.
type Step struct {
	Name    string
	Seconds float64
}

// Container is a container a scenario made.
type Container struct {
	Scenario string
	Name     string // the pod's container name, or Docker's
	Pod      string // the pod's name; empty for Docker
	Attempt  int    // the kubelet's attempt (restart count)
	ID       string // the exporter's container_id: containerd://… or docker://…
	// Cgroup is its own cgroup, Parent the one its runtime was told to put
	// it in (the pod's, or Docker's --cgroup-parent); from the root of the
	// hierarchy.
	Cgroup, Parent string
	// Killed is how many processes the scenario makes the OOM killer kill
	// in it: one per worker killed alone, every process of it in a group
	// kill (the kernel may count the chosen victim twice, see docs/design.md).
	Killed int
	// Procs is how many processes the scenario started in it besides its
	// main process, where it counts them (DockerManyProcs).
	Procs   int
	Unified map[string]string // the CRI's unified resources it was made with
	Runtime Runtime
}

// Runtime is what the runtime said of a container at the end.
type Runtime struct {
	State     string // CRI: CONTAINER_RUNNING, CONTAINER_EXITED; Docker: running, exited
	ExitCode  int
	Reason    string // CRI: OOMKilled
	OOMKilled bool   // Docker's State.OOMKilled
	OOMEvents int    // Docker's oom events for it
}

// Events is a cgroup v2 memory.events file: oom, oom_kill, oom_group_kill, ….
type Events map[string]uint64

// Series is what the exporter showed for one container: metric name →
// value, for container_oom_kills_by_process_total per process
// ("container_oom_kills_by_process_total/dd"). An absent series has no key.
type Series map[string]float64

// The exporter's configurations in the guest, as Report.Scrapes names them.
const (
	WithKmsg    = "with the kernel log"    // --kernel.log=syslog: syslog(2), the Helm chart's default
	WithoutKmsg = "without the kernel log" // --kernel.log=none: a node that refuses CAP_SYSLOG
)

// Metric names the checks read.
const (
	OOMs       = "container_ooms_total"
	GroupKills = "container_oom_group_kills_total"
	Restarts   = "container_restarts_total"
	ExitCode   = "container_last_exit_code"
	ByProcess  = "container_oom_kills_by_process_total"
	HostKills  = "host_oom_kills_total" // in the series of container_id "" (no container)

	// The kill records' series (the kernel log's report of each kill).
	ByScope = "container_oom_kills_by_scope_total" // per scope: container, pod, ancestor, node
	// ExitReason keys the reason label of container_last_exit_code
	// (oom_killed, signal, exited): "container_last_exit_reason/REASON" is 1.
	ExitReason = "container_last_exit_reason"
	OOMLimit   = "container_last_oom_memory_limit_bytes"
	// PodLimitHits is the pod's own limit hits, each of its containers'.
	PodLimitHits = "container_memory_pod_limit_hits_total"
)

// labelled are the metrics with a label besides the container's, and that
// label: their series are keyed "METRIC/VALUE".
var labelled = map[string]string{ByProcess: "process", HostKills: "process", ByScope: "scope", ExitReason: "reason"}

// Labelled says whether metric has a label besides the container's, and
// which.
func Labelled(metric string) (string, bool) {
	l, ok := labelled[metric]
	return l, ok
}

// KernelCounts is the kernel's count for c — oom, oom_kill and
// oom_group_kill of memory.events — of its own cgroup while that exists,
// else of its parent less its siblings that are still there (v2 counts an
// OOM in every ancestor of the cgroup). It is exact where a parent holds at
// most one container whose cgroup is gone, as every scenario makes it.
func (r *Report) KernelCounts(c Container) (Events, error) {
	fields := []string{"oom", "oom_kill", "oom_group_kill"}
	ev := Events{}
	if own, ok := r.Cgroups[c.Cgroup]; ok {
		for _, f := range fields {
			ev[f] = own[f]
		}
		return ev, nil
	}
	parent, ok := r.Cgroups[c.Parent]
	if !ok {
		return nil, fmt.Errorf("%s: neither its cgroup %s nor its parent %s was read", c.Name, c.Cgroup, c.Parent)
	}
	for _, f := range fields {
		ev[f] = parent[f]
	}
	for _, o := range r.Containers {
		if o.Parent != c.Parent || o.Cgroup == c.Cgroup {
			continue
		}
		sib, ok := r.Cgroups[o.Cgroup]
		if !ok {
			return nil, fmt.Errorf("%s: its cgroup is gone and so is its sibling %s's: the parent's count is not its own", c.Name, o.Name)
		}
		for _, f := range fields {
			if sib[f] > ev[f] {
				return nil, fmt.Errorf("%s: its sibling %s counted %s %d, more than their parent's %d", c.Name, o.Name, f, sib[f], ev[f])
			}
			ev[f] -= sib[f]
		}
	}
	return ev, nil
}

// Get is the value of metric, and whether the exporter showed it.
func (s Series) Get(metric string) (float64, bool) {
	v, ok := s[metric]
	return v, ok
}

// Sum adds up a labelled metric over every value of its label.
func (s Series) Sum(metric string) float64 {
	var n float64
	for k, v := range s {
		if strings.HasPrefix(k, metric+"/") {
			n += v
		}
	}
	return n
}

func (s Series) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		name := strings.TrimPrefix(k, "container_")
		if metric, value, ok := strings.Cut(k, "/"); ok {
			name = strings.TrimPrefix(metric, "container_") + "{" + labelled[metric] + "=" + value + "}"
		}
		fmt.Fprintf(&b, "%s=%v", name, s[k])
	}
	return b.String()
}
