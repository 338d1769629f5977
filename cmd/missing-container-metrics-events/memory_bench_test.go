package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/missing-container-metrics/missing-container-metrics/internal/kubernetes/pipe"
)

// BenchmarkCompanionMemory measures the resident memory of the companion
// binary, as built for the image, at rest and through a burst of kills: the
// figures the chart's limits for its container come from
// (docs/performance.md). The apiserver is a fake that answers each pod with
// a spec of a few KiB (four containers with env values) and takes every
// Event; the burst is 20 kills in each of 100 pods, written at once: more
// Events than client-go's recorder queues (1,000), which it writes at the
// client's 5 requests a second (the pods are looked up at that rate too).
// It reports the peak resident memory of each run (wait4's ru_maxrss) and
// the idle one before the burst.
func BenchmarkCompanionMemory(b *testing.B) {
	bin := filepath.Join(b.TempDir(), program)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	var events atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		parts := strings.Split(r.URL.Path, "/")
		switch {
		case r.Method == http.MethodGet && len(parts) == 7 && parts[5] == "pods":
			fmt.Fprint(w, benchPod(parts[4], parts[6]))
		case r.Method == http.MethodPost || r.Method == http.MethodPatch:
			var e map[string]any
			_ = json.NewDecoder(r.Body).Decode(&e)
			events.Add(1)
			if m, ok := e["metadata"].(map[string]any); ok {
				m["resourceVersion"] = "1"
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(e)
		default:
			http.Error(w, "not faked", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(b.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: %q}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n", srv.URL)), 0o600); err != nil {
		b.Fatal(err)
	}
	const pods, killsPerPod = 100, 20
	var peak, idle float64
	for b.Loop() {
		cmd := exec.Command(bin, "--kubernetes.node=n1", "--kubernetes.kubeconfig="+kubeconfig, "--log.level=error")
		cmd.Env = append(os.Environ(), "GOMEMLIMIT=")
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second) // settled: its start-up done
		idle = max(idle, rss(b, cmd.Process.Pid))
		w := bufio.NewWriter(in)
		main := false
		for i := range pods * killsPerPod {
			p := fmt.Sprintf("pod-%d", i%pods)
			_ = pipe.Encode(w, pipe.Kill{Time: time.Now(), Namespace: "ns", Pod: p, PodUID: "uid-" + p, Container: "c1",
				ContainerID: "containerd://0123456789abcdef", Process: "ruby-worker", PID: 1000 + i, MainProcess: &main,
				Scope: "container", From: "kernel log"})
		}
		_ = w.Flush()
		_ = in.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatalf("the companion: %v", err)
		}
		peak = max(peak, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)/1024)
	}
	b.ReportMetric(peak, "peak-RSS-MiB")
	b.ReportMetric(idle, "idle-RSS-MiB")
	b.ReportMetric(float64(events.Load())/float64(b.N), "events-written/run")
}

// rss is a process's resident memory in MiB.
func rss(b *testing.B, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// benchPod is a pod of four containers with some env values each, as the
// apiserver answers a get: a few KiB of JSON.
func benchPod(ns, name string) string {
	var containers []string
	for c := range 4 {
		var env []string
		for e := range 10 {
			env = append(env, fmt.Sprintf(`{"name":"SETTING_%d","value":"%s"}`, e, strings.Repeat("v", 40)))
		}
		containers = append(containers, fmt.Sprintf(`{"name":"c%d","image":"registry.example.com/team/app:1.2.3","env":[%s],"resources":{"limits":{"memory":"512Mi"}}}`, c, strings.Join(env, ",")))
	}
	return fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"namespace":%q,"name":%q,"uid":"uid-%s","labels":{"app":"x"}},"spec":{"nodeName":"n1","containers":[%s]}}`,
		ns, name, name, strings.Join(containers, ","))
}
