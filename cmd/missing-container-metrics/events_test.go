package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
	"github.com/missing-container-metrics/missing-container-metrics/internal/pages"
	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// The exporter links nothing of client-go, the Kubernetes API types or
// apimachinery: they would add some 5 MB of resident memory to every
// exporter. Only the companion links them, and its module alone requires
// them: the exporter's go.mod does not carry client-go.
func TestExporterLinksNoKubernetesClient(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want bool
	}{{".", false}, {"../missing-container-metrics-events", true}} {
		list := exec.Command("go", "list", "-deps", ".")
		list.Dir = tc.dir
		out, err := list.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps in %s: %v\n%s", tc.dir, err, out)
		}
		var k8s []string
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, "k8s.io/client-go/") || strings.HasPrefix(p, "k8s.io/api/") || strings.HasPrefix(p, "k8s.io/apimachinery/") {
				k8s = append(k8s, p)
			}
		}
		if (len(k8s) > 0) != tc.want {
			t.Errorf("%s links %d Kubernetes client packages (%.3v), want any: %v", tc.dir, len(k8s), k8s, tc.want)
		}
		if tc.want && slices.Contains(k8s, "k8s.io/client-go/kubernetes") {
			t.Errorf("the companion links client-go's clientset, which registers every API group")
		}
	}
	out, err := exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod struct{ Require []struct{ Path string } }
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Require {
		if strings.HasPrefix(r.Path, "k8s.io/client-go") || strings.HasPrefix(r.Path, "k8s.io/apimachinery") || strings.HasPrefix(r.Path, "k8s.io/api") {
			t.Errorf("the exporter's go.mod requires %s: the companion's module alone should", r.Path)
		}
	}
}

func fakeExecutable(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), companionName)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// --kubernetes.events needs the node's name and its companion; what is
// missing is said at start.
func TestEventsFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	companion := fakeExecutable(t)
	notExecutable := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExecutable, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  string // NODE_NAME
		err  string
	}{
		{args: []string{"--kubernetes.events"}, err: "--kubernetes.node, or NODE_NAME"},
		{args: []string{"--kubernetes.events", "--kubernetes.node=n1"}, err: "needs its companion program"}, // not beside the test binary
		{args: []string{"--kubernetes.events", "--kubernetes.node=n1", "--kubernetes.events.companion=" + notExecutable}, err: "not an executable file"},
		{args: []string{"--kubernetes.events", "--kubernetes.events.companion=" + companion}, env: "node-from-env"},
		{args: []string{"--kubernetes.node=n1"}}, // off: nothing checked
		// A companion of its own (a sidecar): no program to start, no node
		// name (the companion has it).
		{args: []string{"--kubernetes.events", "--kubernetes.events.socket=/run/mcm-events/events.sock"}},
		{args: []string{"--kubernetes.events", "--kubernetes.events.socket=relative.sock"}, err: "an absolute path"},
		{args: []string{"--kubernetes.events", "--kubernetes.events.socket=/e.sock", "--kubernetes.events.companion=" + companion}, err: "one or the other"},
	} {
		t.Setenv("NODE_NAME", tc.env)
		cfg, err := parseFlags(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if tc.env != "" && cfg.node != tc.env {
			t.Errorf("NODE_NAME ignored: node %q", cfg.node)
		}
	}
	cfg, err := parseFlags([]string{"--kubernetes.events", "--kubernetes.node=n1", "--kubernetes.events.companion=" + companion,
		"--kubernetes.kubeconfig=/etc/kube.conf", "--log.level=debug"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--kubernetes.node=n1", "--log.format=json", "--log.level=debug", "--kubernetes.kubeconfig=/etc/kube.conf"}
	if got := companionArgs(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("companion arguments %q, want %q", got, want)
	}
}

// The companion the exporter starts gets a GOMEMLIMIT of its own: the
// exporter's is its container's whole limit, which the two processes share.
func TestCompanionEnvironment(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "134217728")
	t.Setenv("NODE_NAME", "n1")
	var limits []string
	for _, e := range companionEnv() {
		if strings.HasPrefix(e, "GOMEMLIMIT=") {
			limits = append(limits, e)
		}
		if strings.HasPrefix(e, "NODE_NAME=") && e != "NODE_NAME=n1" {
			t.Errorf("the rest of the environment changed: %s", e)
		}
	}
	if len(limits) != 1 || limits[0] != "GOMEMLIMIT="+companionMemoryLimit {
		t.Errorf("the companion's GOMEMLIMIT: %v, want %s alone", limits, companionMemoryLimit)
	}
}

// A kill in a pod's container becomes the companion's message with all
// the record holds; a kill in no pod becomes none.
func TestEventKill(t *testing.T) {
	main := false
	meta := store.Meta{Runtime: "containerd", ContainerdNamespace: "k8s.io", ID: "abc", Name: "fluentd", KubeContainer: "fluentd",
		Pod: "fluentd-0", Namespace: "logging", PodUID: "uid-1"}
	k := store.Kill{Time: time.Unix(100, 0), Container: meta, Process: "ruby", From: store.FromKernelLog,
		Details: store.KillDetails{PID: 42, MainProcess: &main, Trigger: &store.Process{PID: 43, Name: "dd"},
			Scope: store.ScopePod, LimitCgroup: "/kubepods/poduid-1", Usage: 100, Limit: 200, HasUsage: true, Group: "/g"}}
	got, ok := eventKill(k)
	usage, limit := uint64(100), uint64(200)
	want := pipe.Kill{Time: time.Unix(100, 0), Namespace: "logging", Pod: "fluentd-0", PodUID: "uid-1", Container: "fluentd",
		ContainerID: "containerd://abc", Process: "ruby", PID: 42, MainProcess: &main, Scope: "pod", LimitCgroup: "/kubepods/poduid-1",
		Usage: &usage, Limit: &limit, Trigger: "dd", TriggerPID: 43, Group: "/g", From: "kernel log"}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v (%v)\nwant %+v", got, ok, want)
	}
	counted := store.Kill{Time: time.Unix(100, 0), Container: meta, From: store.FromCounter}
	if got, ok := eventKill(counted); !ok || got.Usage != nil || got.MainProcess != nil || got.Process != "" {
		t.Errorf("a counted kill: %+v %v", got, ok)
	}
	for _, k := range []store.Kill{
		{Host: true, Process: "sshd"},
		{Unplaced: true, Process: "x"},
		{Container: store.Meta{Runtime: "docker", ID: "d", Name: "web"}},         // no pod
		{Container: store.Meta{Runtime: "containerd", ID: "e", PodUID: "uid-2"}}, // only the kernel knows it: no name
	} {
		if m, ok := eventKill(k); ok {
			t.Errorf("%+v became %+v", k, m)
		}
	}
}

// With --kubernetes.events, /metrics has the companion's series.
func TestEventsMetrics(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := pipe.New(pipe.Options{Path: "/nonexistent", Queue: 1}, promslog.NewNopLogger())
	c.Send(pipe.Kill{})
	c.Send(pipe.Kill{})
	for _, tc := range []struct {
		events *pipe.Companion
		want   bool
	}{{nil, false}, {c, true}} {
		rec := httptest.NewRecorder()
		routes(cfg, pages.Site{}, store.New(time.Minute), tc.events, promslog.NewNopLogger()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body := rec.Body.String()
		for _, line := range []string{
			"missing_container_metrics_kubernetes_events_dropped_total 1",
			"missing_container_metrics_kubernetes_events_sent_total 0",
			"missing_container_metrics_kubernetes_events_companion_up 0",
			"missing_container_metrics_kubernetes_events_companion_starts_total 0",
		} {
			if strings.Contains(body, line) != tc.want {
				t.Errorf("events %v: %q in /metrics: %v", tc.want, line, !tc.want)
			}
		}
	}
}
