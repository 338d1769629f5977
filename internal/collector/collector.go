// Package collector turns a store snapshot into Prometheus metrics at scrape
// time. It only reads: every value is decided by the store.
//
// The per-container families, thousands of series on a busy host, are
// written straight into the text exposition format by WriteText, with each
// container's labels escaped once and kept while its metadata stays the
// same. The exporter's own metrics go through client_golang (Collect) and
// WriteText merges the two in name order.
package collector

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Namespace prefixes the exporter's own metrics.
const Namespace = "missing_container_metrics"

// ContainerLabels are the labels of every per-container series, in order.
// One id is enough on every series: kube-state-metrics joins on container_id,
// or on namespace, pod and container (and uid).
var ContainerLabels = []string{
	"container_id", "name", "container", "pod", "namespace", "uid", "containerd_namespace",
}

// LegacyLabels are the earlier tool's labels, on every per-container series
// too with Options.LegacyNames: its other ids, and the image. They are left
// out by default: every series repeated them, a third of its bytes.
var LegacyLabels = []string{"container_short_id", "docker_container_id", "image_id"}

// family is one per-container metric: its names, help, type and a pure
// function from a container to its value (ok false: no sample).
type family struct {
	name, legacy, help string
	typ                string // "counter" or "gauge"
	value              func(c *store.Container) (v float64, ok bool)
	// extra and each, instead of value: one sample per key of the map, the
	// key being the value of the label extra, after the container's.
	extra string
	each  func(c *store.Container) map[string]uint64
	// label, with value: the value of the label extra, after the
	// container's; "" leaves it out.
	label func(c *store.Container) string
}

var families = []family{
	{
		name: "container_ooms_total", legacy: "container_ooms",
		help: "OOM kills of any process in the container, also those that did not end it.",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.OOMs), true
		},
	},
	{
		name: "container_restarts_total", legacy: "container_restarts",
		help: "Restarts of the container: every start but the first (for Kubernetes, the kubelet's restart count).",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.Restarts), !c.KernelOnly // unknown without a runtime
		},
	},
	{
		name: "container_last_exit_code", legacy: "container_last_exit_code",
		help:  "Exit code of the container's main process at its last exit; absent until it exited once. Its reason, where known exactly: oom_killed (an OOM kill ended it: of the main process, a group kill, or a wrapper's child), signal (another signal: a stop's SIGTERM or SIGKILL), exited (its own exit code).",
		typ:   "gauge",
		extra: "reason",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.ExitCode), c.Exited
		},
		label: func(c *store.Container) string { return c.ExitReason },
	},
	{
		name: "container_oom_kills_by_process_total", legacy: "container_oom_kills_by_process_total",
		help:  "OOM kills in the container that the kernel log names, by the victim's command name.",
		typ:   "counter",
		extra: "process",
		each:  func(c *store.Container) map[string]uint64 { return c.ProcessKills },
	},
	{
		name: "container_last_oom_timestamp_seconds", legacy: "container_last_oom_timestamp_seconds",
		help: "Time of the container's most recent OOM kill known, in seconds since the epoch; absent until one is known.",
		typ:  "gauge",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.LastOOM.UnixNano()) / 1e9, !c.LastOOM.IsZero()
		},
	},
	{
		name: "container_oom_kills_by_scope_total", legacy: "container_oom_kills_by_scope_total",
		help:  "OOM kills in the container that the kernel log described, by whose memory limit was hit: container, pod (the pod's limit), ancestor (another cgroup above the container), node (the node's memory).",
		typ:   "counter",
		extra: "scope",
		each:  func(c *store.Container) map[string]uint64 { return c.KillsByScope },
	},
	{
		name: "container_oom_kills_by_outcome_total", legacy: "container_oom_kills_by_outcome_total",
		help:  "OOM kills in the container by what became of it: ended (the kill ended the container: its main process, a memory.oom.group kill of all its processes, or a wrapper that exited as its child was killed) or lived_on (the container ran on). A kill whose outcome is not known yet, or at all, is in neither.",
		typ:   "counter",
		extra: "outcome",
		each:  func(c *store.Container) map[string]uint64 { return c.KillsByOutcome },
	},
	{
		name: "container_last_oom_memory_usage_bytes", legacy: "container_last_oom_memory_usage_bytes",
		help: "Memory usage of the cgroup whose limit the container's newest described OOM kill hit, as the kernel reported it then; absent until one is known.",
		typ:  "gauge",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.LastOOMUsage), c.HasLastOOMUsage
		},
	},
	{
		name: "container_last_oom_memory_limit_bytes", legacy: "container_last_oom_memory_limit_bytes",
		help: "Memory limit of the cgroup whose limit the container's newest described OOM kill hit, as the kernel reported it then; absent until one is known.",
		typ:  "gauge",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.LastOOMLimit), c.HasLastOOMUsage
		},
	},
	{
		name: "container_memory_limit_hits_total", legacy: "container_memory_limit_hits_total",
		help: "Times the memory usage of the container's cgroup hit its limit, and the kernel reclaimed to make room (cgroup v2 memory.events max, v1 memory.failcnt): a warning before an OOM kill, or a page cache filled to the limit.",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.Pressure.LimitHits), c.Pressure.HasLimitHits
		},
	},
	{
		name: "container_memory_pod_limit_hits_total", legacy: "container_memory_pod_limit_hits_total",
		help: "Times the memory usage of the Kubernetes container's pod hit the pod's own limit (the pod's cgroup v2 memory.events.local max, v1 memory.failcnt), counted since the pod was made: the same for each container of the pod. A pod of one container hits its limit there, not in the container's cgroup: its sandbox's pause process is charged to the pod too.",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.Pressure.PodLimitHits), c.Pressure.HasPodLimitHits
		},
	},
	{
		name: "container_memory_high_hits_total", legacy: "container_memory_high_hits_total",
		help: "Times the memory usage of the container's cgroup went over memory.high, and its tasks were throttled to reclaim (cgroup v2 memory.events high).",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.Pressure.HighHits), c.Pressure.HasHighHits
		},
	},
	{
		name: "container_memory_pressure_waiting_seconds_total", legacy: "container_memory_pressure_waiting_seconds_total",
		help: "Time in which some task of the container's cgroup waited for memory: reclaim, refaults (cgroup v2 memory.pressure, PSI some).",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return c.Pressure.Waiting.Seconds(), c.Pressure.HasStall
		},
	},
	{
		name: "container_memory_pressure_stalled_seconds_total", legacy: "container_memory_pressure_stalled_seconds_total",
		help: "Time in which every task of the container's cgroup that was not idle waited for memory at once (cgroup v2 memory.pressure, PSI full).",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return c.Pressure.Stalled.Seconds(), c.Pressure.HasStall
		},
	},
	{
		name: "container_oom_group_kills_total", legacy: "container_oom_group_kills_total",
		help: "memory.oom.group kills of the container's cgroup, each of which killed all its processes (cgroup v2).",
		typ:  "counter",
		value: func(c *store.Container) (float64, bool) {
			return float64(c.GroupKills), c.HasGroupKills
		},
	},
}

// Options change what the collector exports.
type Options struct {
	// LegacyNames exports the earlier tool's metric names
	// (container_ooms, container_restarts) instead of the _total ones.
	LegacyNames bool
}

// Collector exports the store's containers and sources.
type Collector struct {
	store  *store.Store
	descs  []*prometheus.Desc // one per family, in order, and the kills in no container
	text   []textFamily       // what WriteText writes itself, in name order
	labels labelCache

	up, events, malformed, reconnects, panics, tracked   *prometheus.Desc
	limit, turnedAway, watches, watchLimit, unattributed *prometheus.Desc
}

// New returns a collector that reads s at every scrape.
func New(s *store.Store, opts Options) *Collector {
	c := &Collector{store: s}
	c.labels.legacy = opts.LegacyNames
	for i := range families {
		f := &families[i]
		name := f.name
		if opts.LegacyNames {
			name = f.legacy
		}
		labels := ContainerLabels
		if opts.LegacyNames {
			labels = append(labels[:len(labels):len(labels)], LegacyLabels...)
		}
		if f.extra != "" {
			labels = append(labels[:len(labels):len(labels)], f.extra)
		}
		c.descs = append(c.descs, prometheus.NewDesc(name, f.help, labels, nil))
		c.text = append(c.text, newTextFamily(name, f.help, f.typ, f))
	}
	for _, k := range []struct {
		name, help, label string
		kills             func(store.Snapshot) map[string]uint64
	}{
		{hostKillsName, hostKillsHelp, "process", func(s store.Snapshot) map[string]uint64 { return s.HostKills }},
		{cgroupKillsName, cgroupKillsHelp, "cgroup", func(s store.Snapshot) map[string]uint64 { return s.CgroupKills }},
	} {
		c.descs = append(c.descs, prometheus.NewDesc(k.name, k.help, []string{k.label}, nil))
		c.text = append(c.text, newKillsFamily(k.name, k.help, k.label, k.kills))
	}
	slices.SortFunc(c.text, func(a, b textFamily) int { return strings.Compare(a.name, b.name) })
	own := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, []string{"source"}, nil)
	}
	// A source is a runtime's (docker, containerd) or one of the kernel
	// reader's: cgroup (the memory cgroups' counters), kmsg (the kernel log).
	c.up = own("source_up", "Whether the source works (1) or not (0): a runtime connected and listed, the cgroup hierarchy watched, the kernel log open.")
	c.events = own("events_total", "What the source read: a runtime's events, the cgroups' counter readings, the kernel log's records.")
	c.malformed = own("malformed_events_total", "What the source read that could not be understood and was skipped (and, for kmsg, kernel log records overwritten before they were read).")
	c.reconnects = own("reconnects_total", "Times the source worked again after it failed.")
	c.panics = own("source_panics_total", "Times the source ended in a panic, which was recovered; the source then starts again.")
	c.tracked = own("containers", "Containers the source tracks now, removed ones not included: a runtime's containers, or for cgroup those whose memory cgroup it watches.")
	c.limit = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "max_containers"),
		"The most containers the exporter tracks (--max-containers); 0: no limit.", nil, nil)
	c.turnedAway = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "containers_turned_away_total"),
		"Containers not tracked because --max-containers was reached and no removed container could make room: their kills, restarts and exits are not counted.", nil, nil)
	c.unattributed = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "oom_kills_unattributed_total"),
		"OOM kills a parent cgroup of containers (cgroup v2: a pod's cgroup, system.slice) counted that none of its containers' counters did, and that could not be told to one container: two or more of its children went at once before their counters were read. They are in no container_ooms_total.", nil, nil)
	c.watches = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "inotify_watches"),
		"inotify watches the kernel reader holds on the cgroup hierarchy; they count against the user's fs.inotify.max_user_watches.", nil, nil)
	c.watchLimit = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "inotify_watches_limit"),
		"The most inotify watches the kernel reader holds (--kernel.max-watches); 0: no limit. Past it, new cgroups are found by rescans.", nil, nil)
	return c
}

const (
	hostKillsName   = "host_oom_kills_total"
	hostKillsHelp   = "OOM kills of processes in no container when the node ran out of memory (a global OOM), by command name."
	cgroupKillsName = "cgroup_oom_kills_total"
	cgroupKillsHelp = "OOM kills of processes in no container, in a cgroup with a limit of its own (a systemd service's MemoryMax, a job runner's cgroup), by the victim's cgroup; the first 30 cgroups apart, the rest under \"other\"."
)

// Describe sends the descriptors of every metric the collector exports,
// also those WriteText writes itself, so that a registry refuses another
// collector of the same names.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{c.up, c.events, c.malformed, c.reconnects, c.panics, c.tracked, c.limit, c.turnedAway, c.watches, c.watchLimit, c.unattributed} {
		ch <- d
	}
}

// Collect sends the metrics of the sources. The containers' and the host's
// OOM kills are not sent: WriteText writes them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	limit, turnedAway := c.store.Limit()
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(limit))
	ch <- prometheus.MustNewConstMetric(c.turnedAway, prometheus.CounterValue, float64(turnedAway))
	ch <- prometheus.MustNewConstMetric(c.unattributed, prometheus.CounterValue, float64(c.store.Unattributed()))
	for _, src := range c.store.Sources() {
		up := 0.0
		if src.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, src.Name)
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(src.Events), src.Name)
		ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.CounterValue, float64(src.Malformed), src.Name)
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(src.Reconnects), src.Name)
		ch <- prometheus.MustNewConstMetric(c.panics, prometheus.CounterValue, float64(src.Panics), src.Name)
		if src.Name != store.KmsgSource { // the kernel log tracks no container
			ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(src.Containers), src.Name)
		}
		if src.Name == store.CgroupSource {
			ch <- prometheus.MustNewConstMetric(c.watches, prometheus.GaugeValue, float64(src.Watches))
			ch <- prometheus.MustNewConstMetric(c.watchLimit, prometheus.GaugeValue, float64(src.WatchLimit))
		}
	}
}
