package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/missing-container-metrics/missing-container-metrics/internal/collector"
	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// Kubernetes Events (--kubernetes.events) come from a companion program,
// which alone links client-go; the exporter starts it and writes it each
// kill, or, with --kubernetes.events.socket, connects to it where it runs
// in a container of its own (internal/kubernetes/pipe).

// companionName is the companion's executable, beside the exporter's.
const companionName = "missing-container-metrics-events"

// defaultCompanion is companionName in the directory of this executable.
func defaultCompanion() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(exe), companionName), nil
}

// checkCompanion refuses a companion that is not an executable file: a
// wrong path shows at start, not as Events that never come.
func checkCompanion(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--kubernetes.events needs its companion program: %w (--kubernetes.events.companion)", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("--kubernetes.events: the companion %s is not an executable file", path)
	}
	return nil
}

// companionArgs are the companion's arguments: this node, the API's
// access, and the exporter's log level, in JSON, which the exporter reads
// back into its own log.
func companionArgs(cfg *config) []string {
	args := []string{"--kubernetes.node=" + cfg.node, "--log.format=json"}
	if cfg.log.Level != nil {
		args = append(args, "--log.level="+cfg.log.Level.String())
	}
	if cfg.kubeconfig != "" {
		args = append(args, "--kubernetes.kubeconfig="+cfg.kubeconfig)
	}
	return args
}

// companionMemoryLimit is the GOMEMLIMIT of the companion the exporter
// starts: the exporter's own is its container's whole limit, which the
// two processes share. The companion's peak through a burst of kills is
// well under it (docs/performance.md, "The Events companion"); it is a soft
// limit, which makes the companion's garbage collector work harder near it.
const companionMemoryLimit = "32MiB"

// companionEnv is the environment of the companion the exporter starts:
// the exporter's, with a GOMEMLIMIT of the companion's own.
func companionEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "GOMEMLIMIT=") })
	return append(env, "GOMEMLIMIT="+companionMemoryLimit)
}

// eventKill is the message of a kill for the companion; false for a kill
// in no pod (on the host, not placed, in a container Kubernetes did not
// make), which has nothing to record an Event on.
func eventKill(k store.Kill) (pipe.Kill, bool) {
	m := k.Container
	if k.Host || k.Unplaced || m.Namespace == "" || m.Pod == "" || m.PodUID == "" {
		return pipe.Kill{}, false
	}
	d := k.Details
	out := pipe.Kill{
		Time: k.Time, Namespace: m.Namespace, Pod: m.Pod, PodUID: m.PodUID, Container: m.KubeContainer,
		ContainerID: m.ContainerID(), Process: k.Process, PID: d.PID, MainProcess: d.MainProcess, Outcome: k.Outcome,
		Scope: d.Scope, LimitCgroup: d.LimitCgroup, Group: d.Group, From: k.From, HeldBy: d.HeldBy(),
	}
	for _, mb := range k.Members {
		out.Members = append(out.Members, mb.Name)
	}
	if k.Before != nil {
		out.Before = k.Before.Summary(k.Time)
	}
	if out.Container == "" {
		out.Container = m.Name
	}
	if d.HasUsage {
		usage, limit := d.Usage, d.Limit
		out.Usage, out.Limit = &usage, &limit
	}
	if d.Trigger != nil {
		out.Trigger, out.TriggerPID = d.Trigger.Name, d.Trigger.PID
	}
	return out, true
}

// eventsMetrics are the exporter's own metrics of the companion.
func eventsMetrics(c *pipe.Companion) []prometheus.Collector {
	name := func(s string) string { return collector.Namespace + "_kubernetes_events_" + s }
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("sent_total"),
			Help: "OOM kills written to the Kubernetes Events companion."},
			func() float64 { return float64(c.Sent()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("dropped_total"),
			Help: "OOM kills that got no Kubernetes Event because the companion was away or slow and its queue full."},
			func() float64 { return float64(c.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name("companion_up"),
			Help: "1 while the Kubernetes Events companion runs (with --kubernetes.events.socket: while the exporter is connected to it)."},
			func() float64 {
				if c.Up() {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name("companion_starts_total"),
			Help: "Times the Kubernetes Events companion was started, or connected to with --kubernetes.events.socket (more than once: it ended, or the connection did, and it was started or connected to again)."},
			func() float64 { return float64(c.Starts()) }),
	}
}

// checkEventsFlags checks what --kubernetes.events needs, and finds the
// companion.
func checkEventsFlags(cfg *config) error {
	if !cfg.events {
		return nil
	}
	if cfg.eventsSocket != "" {
		// The companion runs on its own, and knows its node.
		switch {
		case !filepath.IsAbs(cfg.eventsSocket):
			return fmt.Errorf("--kubernetes.events.socket must be an absolute path, got %q", cfg.eventsSocket)
		case cfg.companion != "":
			return errors.New("--kubernetes.events.socket connects to a companion that runs on its own, --kubernetes.events.companion starts one: one or the other")
		}
		return nil
	}
	if cfg.node == "" {
		return errors.New("--kubernetes.events needs this node's name: --kubernetes.node, or NODE_NAME (the chart sets it from the pod's spec.nodeName)")
	}
	if cfg.companion == "" {
		var err error
		if cfg.companion, err = defaultCompanion(); err != nil {
			return fmt.Errorf("--kubernetes.events: finding the companion beside this executable: %w", err)
		}
	}
	return checkCompanion(cfg.companion)
}
