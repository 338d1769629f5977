package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Counts against the kubelet's own account: workload pods made through the
// apiserver, run by the kubelet, and the exporter's DaemonSet pod scraped over
// the pod network. What kube-state-metrics exports comes from the same pod
// status that these tests read.

// startCount is shell that appends "start" to /rec/starts and sets n to the
// number of starts before this one.
const startCount = `n=$(cat /rec/starts 2>/dev/null | wc -l); echo start >> /rec/starts; `

// restarts is the exporter's max by (namespace, pod, container) of
// container_restarts_total, and the number of series behind it.
func restarts(s *scrape, ns, pod, container string) (float64, int) {
	return s.max("container_restarts_total", map[string]string{"namespace": ns, "pod": pod, "container": container})
}

// exitCodeOf is container_last_exit_code of the container id, if exported.
func exitCodeOf(s *scrape, id string) (float64, bool) {
	all := s.all("container_last_exit_code", map[string]string{"container_id": id})
	if len(all) != 1 {
		return 0, false
	}
	return all[0].Value, true
}

// waitSettled waits until the pod's container name runs after restartCount
// restarts, and the pod is Ready.
func waitSettled(t *testing.T, ns, pod, name string, restartCount int32) *corev1.Pod {
	t.Helper()
	return waitPod(t, ns, pod, 3*time.Minute, func(p *corev1.Pod) error {
		st := status(p, name)
		if st == nil || st.State.Running == nil || st.RestartCount != restartCount || podReady(p) != nil {
			return fmt.Errorf("want %s running after %d restarts: %s", name, restartCount, describeStatuses(p))
		}
		return nil
	})
}

// A crash loop: the container exits 10, 11, 12 and 13 and then runs. The
// exporter's max by (namespace, pod, container) of container_restarts_total
// is the kubelet's restartCount (kube-state-metrics'
// kube_pod_container_status_restarts_total), and the last exit code of the
// container the kubelet names in lastState is the one it gives.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "crashloop")
	rec := newRecords(t)
	createPod(t, ns, newPod("crasher", rec, corev1.RestartPolicyAlways,
		container("app", startCount+`[ "$n" -lt 4 ] && exit $((10 + n)); exec sleep 100000`)))
	waitSettled(t, ns, "crasher", "app", 4)
	// The kubelet may show the fifth run before the exit of the fourth in
	// its lastState (seen in the full suite, once for over a minute while
	// Kubernetes and CRI-O were being built beside it): wait for both.
	p := waitPod(t, ns, "crasher", 3*time.Minute, func(p *corev1.Pod) error {
		st := status(p, "app")
		if st == nil {
			return fmt.Errorf("no status of app yet: %s", describeStatuses(p))
		}
		if st.LastTerminationState.Terminated == nil {
			return fmt.Errorf("no lastState yet: %s; lastState %+v", describeStatuses(p), st.LastTerminationState)
		}
		return nil
	})
	rec.waitLines(t, time.Minute, "starts", "start", 5)
	st := status(p, "app")
	last := st.LastTerminationState.Terminated
	if last == nil || last.ExitCode != 13 || rec.lines(t, "starts", "start") != 5 {
		t.Fatalf("kubelet: lastState %+v, %d starts; want exit code 13 after 5 starts", last, rec.lines(t, "starts", "start"))
	}
	e.until(t, time.Minute, func(s *scrape) error {
		if max, n := restarts(s, ns, "crasher", "app"); max != float64(st.RestartCount) {
			return fmt.Errorf("max restarts %v over %d containers, the kubelet's restartCount %d", max, n, st.RestartCount)
		}
		if code, ok := exitCodeOf(s, last.ContainerID); !ok || code != float64(last.ExitCode) {
			return fmt.Errorf("last exit code of %s: %v (exported %v), the kubelet's %d", last.ContainerID, code, ok, last.ExitCode)
		}
		if _, ok := exitCodeOf(s, st.ContainerID); ok {
			return fmt.Errorf("the running container %s has an exit code", st.ContainerID)
		}
		return nil
	})
}

// The main process OOM-killed: the kubelet says OOMKilled and 137, the
// exporter one OOM kill and 137.
func TestMainProcessOOMKilled(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "oom-main")
	rec := newRecords(t)
	createPod(t, ns, newPod("oomer", rec, corev1.RestartPolicyNever,
		container("app", `echo start >> /rec/starts; exec dd if=/dev/zero of=/dev/null bs=64M count=1`)))
	p := waitPod(t, ns, "oomer", 3*time.Minute, func(p *corev1.Pod) error {
		if st := status(p, "app"); st == nil || st.State.Terminated == nil {
			return fmt.Errorf("not terminated yet: %s", describeStatuses(p))
		}
		return nil
	})
	term := status(p, "app").State.Terminated
	if term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Fatalf("kubelet: %s %d, want OOMKilled 137", term.Reason, term.ExitCode)
	}
	e.until(t, time.Minute, func(s *scrape) error {
		return wantCounts(s, term.ContainerID, 1, 0, 137)
	})
}

// A pod that shares its process namespace (shareProcessNamespace): the
// pause process is pid 1 of it, and the app's main process is not. Its OOM
// kill is still its container's end, as the kubelet says (OOMKilled 137):
// the main process is the pid the runtime gives, not pid 1. (It was
// "signal", or not known.)
func TestSharedPidNamespaceMainProcessOOMKilled(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "oom-shared-pid")
	rec := newRecords(t)
	share := true
	pod := newPod("oomer", rec, corev1.RestartPolicyNever,
		container("app", `echo start >> /rec/starts; sleep 1; exec dd if=/dev/zero of=/dev/null bs=64M count=1`))
	pod.Spec.ShareProcessNamespace = &share
	createPod(t, ns, pod)
	p := waitPod(t, ns, "oomer", 3*time.Minute, func(p *corev1.Pod) error {
		if st := status(p, "app"); st == nil || st.State.Terminated == nil {
			return fmt.Errorf("not terminated yet: %s", describeStatuses(p))
		}
		return nil
	})
	term := status(p, "app").State.Terminated
	if term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Fatalf("kubelet: %s %d, want OOMKilled 137", term.Reason, term.ExitCode)
	}
	e.until(t, time.Minute, func(s *scrape) error {
		if err := wantCounts(s, term.ContainerID, 1, 0, 137); err != nil {
			return err
		}
		_, err := s.one("container_last_exit_code", map[string]string{"container_id": term.ContainerID, "reason": "oom_killed"})
		return err
	})
}

// wantCounts checks one container's series; code < 0: no exit code.
func wantCounts(s *scrape, id string, ooms, restarts, code float64) error {
	o, err := s.one("container_ooms_total", map[string]string{"container_id": id})
	if err != nil {
		return err
	}
	r, err := s.one("container_restarts_total", map[string]string{"container_id": id})
	if err != nil {
		return err
	}
	c, exited := exitCodeOf(s, id)
	if o != ooms || r != restarts || exited != (code >= 0) || (exited && c != code) {
		return fmt.Errorf("%s: ooms %v restarts %v exit code %v (%v); want %v %v %v", id, o, r, c, exited, ooms, restarts, code)
	}
	return nil
}

// The fluentd story: a worker OOM-killed three times while the container
// lives on. The kubelet shows nothing — no restart, no last state, no event —
// and the exporter counts each kill, as the kernel's own counter does.
func TestWorkerOOMKilled(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "worker")
	rec := newRecords(t)
	createPod(t, ns, newPod("fluentd", rec, corev1.RestartPolicyAlways,
		container("fluentd", `for i in 1 2 3; do `+oomKill("fluentd-worker")+`; [ $? = 137 ] && echo oom >> /rec/ooms; done; exec sleep 100000`)))
	rec.waitLines(t, 2*time.Minute, "ooms", "oom", 3)
	p := waitSettled(t, ns, "fluentd", "fluentd", 0)
	st := status(p, "fluentd")
	if st.LastTerminationState.Terminated != nil || st.RestartCount != 0 {
		t.Errorf("the kubelet shows a termination: %+v", st)
	}
	evs, err := env.client.CoreV1().Events(ns).List(ctxFor(t, time.Minute), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		// TestEvents' exporter, on the same node, records its own.
		if ev.Source.Component == "missing-container-metrics" {
			continue
		}
		if strings.Contains(ev.Reason, "OOM") || strings.Contains(ev.Message, "OOM") {
			t.Errorf("the kubelet told of the kill after all: %s %s", ev.Reason, ev.Message)
		}
	}
	if got := kernelOOMKills(t, st.ContainerID); got != 3 {
		t.Errorf("the kernel's counter of the container's cgroup: %d kills, the container logged 3", got)
	}
	e.until(t, time.Minute, func(s *scrape) error {
		return wantCounts(s, st.ContainerID, 3, 0, -1)
	})
}

// kernelOOMKills reads the oom_kill counter of a live container's memory cgroup (v1).
func kernelOOMKills(t *testing.T, id string) int {
	t.Helper()
	pid := containerPID(t, id)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,") {
			oc, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.oom_control"))
			if err != nil {
				t.Fatal(err)
			}
			var n int
			for _, f := range strings.Split(string(oc), "\n") {
				if _, err := fmt.Sscanf(f, "oom_kill %d", &n); err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("no memory cgroup with oom_kill for %s", id)
	return 0
}

// A failing exec liveness probe: the kubelet kills and restarts the
// container until the probe passes (from the third start on). The probe's
// exits (7) are no exit codes; the restarts and the last exit code (143 for
// SIGTERM, or 137 if the kill came after the grace period) are the kubelet's.
func TestLivenessProbe(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "liveness")
	rec := newRecords(t)
	c := container("app", startCount+`[ "$n" -ge 2 ] && touch /tmp/healthy; trap 'exit 143' TERM; while true; do sleep 1 & wait; done`)
	c.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", "test -e /tmp/healthy || exit 7"}}},
		PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 10,
	}
	pod := newPod("probed", rec, corev1.RestartPolicyAlways, c)
	grace := int64(30)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	createPod(t, ns, pod)
	p := waitSettled(t, ns, "probed", "app", 2)
	st := status(p, "app")
	last := st.LastTerminationState.Terminated
	if last == nil || (last.ExitCode != 143 && last.ExitCode != 137) {
		t.Fatalf("kubelet: lastState %+v, want exit code 143 (SIGTERM) or 137", last)
	}
	e.until(t, time.Minute, func(s *scrape) error {
		if max, n := restarts(s, ns, "probed", "app"); max != float64(st.RestartCount) {
			return fmt.Errorf("max restarts %v over %d containers, the kubelet's restartCount %d", max, n, st.RestartCount)
		}
		for _, x := range s.all("container_last_exit_code", map[string]string{"namespace": ns, "pod": "probed"}) {
			if x.Value != 143 && x.Value != 137 {
				return fmt.Errorf("%s: exit code %v, want only the kubelet's kills (the probe's 7 is none)", x.Labels["container_id"], x.Value)
			}
		}
		if code, ok := exitCodeOf(s, last.ContainerID); !ok || code != float64(last.ExitCode) {
			return fmt.Errorf("last exit code of %s: %v (exported %v), the kubelet's %d", last.ContainerID, code, ok, last.ExitCode)
		}
		return nil
	})
}

// Init containers: the first fails once (exit 5) and is run again, the second
// succeeds; each is exported under its name with the kubelet's restarts and
// exit codes. (Once an init container completed, the kubelet no longer shows
// the failed run: its exit code comes from the container's own record.)
func TestInitContainers(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "init")
	rec := newRecords(t)
	pod := newPod("initialised", rec, corev1.RestartPolicyAlways, container("app", "exec sleep 100000"))
	pod.Spec.InitContainers = []corev1.Container{
		container("init-a", startCount+`[ "$n" -ge 1 ] && exit 0; exit 5`),
		container("init-b", "exit 0"),
	}
	createPod(t, ns, pod)
	p := waitSettled(t, ns, "initialised", "app", 0)
	a, b := status(p, "init-a"), status(p, "init-b")
	if a.RestartCount != 1 || a.State.Terminated == nil || a.State.Terminated.ExitCode != 0 || rec.lines(t, "starts", "start") != 2 {
		t.Fatalf("kubelet: init-a %s; %d starts, want 2", describeStatuses(p), rec.lines(t, "starts", "start"))
	}
	e.until(t, time.Minute, func(s *scrape) error {
		if max, _ := restarts(s, ns, "initialised", "init-a"); max != 1 {
			return fmt.Errorf("init-a: max restarts %v, the kubelet's 1", max)
		}
		if err := wantCounts(s, a.ContainerID, 0, 1, 0); err != nil {
			return fmt.Errorf("init-a's second run: %w", err)
		}
		var first []sample
		for _, x := range s.all("container_last_exit_code", map[string]string{"namespace": ns, "pod": "initialised", "container": "init-a"}) {
			if x.Labels["container_id"] != a.ContainerID {
				first = append(first, x)
			}
		}
		if len(first) != 1 || first[0].Value != 5 {
			return fmt.Errorf("init-a's first run: %v, want one container with exit code 5", first)
		}
		if err := wantCounts(s, first[0].Labels["container_id"], 0, 0, 5); err != nil {
			return fmt.Errorf("init-a's first run: %w", err)
		}
		if err := wantCounts(s, b.ContainerID, 0, 0, 0); err != nil {
			return fmt.Errorf("init-b: %w", err)
		}
		return wantCounts(s, status(p, "app").ContainerID, 0, 0, -1)
	})
}

// A deleted pod: its containers' series stay for --retention after the
// kubelet removed them, then go.
func TestPodDeleted(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "deleted")
	rec := newRecords(t)
	createPod(t, ns, newPod("short", rec, corev1.RestartPolicyNever, container("app", "exit 3")))
	p := waitPod(t, ns, "short", 3*time.Minute, func(p *corev1.Pod) error {
		if st := status(p, "app"); st == nil || st.State.Terminated == nil {
			return fmt.Errorf("not terminated yet: %s", describeStatuses(p))
		}
		return nil
	})
	id := status(p, "app").State.Terminated.ContainerID
	e.until(t, time.Minute, func(s *scrape) error { return wantCounts(s, id, 0, 0, 3) })
	deletePod(t, ns, "short")
	removed := time.Now()
	waitContainerGone(t, id)
	e.until(t, sharedRetention+2*time.Minute, func(s *scrape) error {
		if n := len(s.all("container_restarts_total", map[string]string{"namespace": ns})); n > 0 {
			return fmt.Errorf("%d series of the deleted pod's containers left", n)
		}
		return nil
	})
	t.Logf("series gone %s after the pod (retention %s)", time.Since(removed).Round(time.Second), sharedRetention)
}

// waitContainerGone waits until the node's containerd no longer has the container.
func waitContainerGone(t *testing.T, id string) {
	t.Helper()
	eventually(t, 3*time.Minute, func() error {
		out, err := env.node.Ctr(ctxFor(t, time.Minute), "-n", "k8s.io", "containers", "ls", "-q")
		if err != nil {
			return err
		}
		if strings.Contains(out, strings.TrimPrefix(id, "containerd://")) {
			return fmt.Errorf("container %s still in containerd", id)
		}
		return nil
	})
}

// podContainers lists the ids (containerd://…) of the containers the node's
// containerd has of the pod uid and container name.
func podContainers(t *testing.T, uid, name string) []string {
	t.Helper()
	out, err := env.node.Ctr(ctxFor(t, time.Minute), "-n", "k8s.io", "containers", "ls", "-q",
		fmt.Sprintf(`labels."io.kubernetes.pod.uid"==%s,labels."io.kubernetes.container.name"==%s`, uid, name))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range strings.Fields(out) {
		ids = append(ids, "containerd://"+id)
	}
	sort.Strings(ids)
	return ids
}

// The kubelet's own garbage collection of dead containers (every minute,
// keeping the newest dead one of each): once the series of the removed ones
// went (--retention), the exporter shows exactly the containers the kubelet
// kept, and max by (namespace, pod, container) is still the kubelet's
// restartCount, which the newest container carries.
func TestKubeletContainerGC(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "gc")
	rec := newRecords(t)
	createPod(t, ns, newPod("crasher", rec, corev1.RestartPolicyAlways,
		container("app", startCount+`[ "$n" -lt 5 ] && exit 1; exec sleep 100000`)))
	p := waitSettled(t, ns, "crasher", "app", 5)
	t0 := time.Now()
	eventually(t, 3*time.Minute, func() error {
		if ids := podContainers(t, string(p.UID), "app"); len(ids) > 2 {
			return fmt.Errorf("the kubelet has not collected yet: %d containers", len(ids))
		}
		return nil
	})
	kept := podContainers(t, string(p.UID), "app")
	t.Logf("the kubelet collected %d of 6 containers, %s after the last start", 6-len(kept), time.Since(t0).Round(time.Second))
	st := status(getPod(t, ns, "crasher"), "app")
	e.until(t, sharedRetention+2*time.Minute, func(s *scrape) error {
		var exported []string
		for _, x := range s.all("container_restarts_total", map[string]string{"namespace": ns, "pod": "crasher"}) {
			exported = append(exported, x.Labels["container_id"])
		}
		if strings.Join(exported, " ") != strings.Join(kept, " ") {
			return fmt.Errorf("exported %v, the kubelet kept %v", exported, kept)
		}
		if max, n := restarts(s, ns, "crasher", "app"); max != float64(st.RestartCount) {
			return fmt.Errorf("max restarts %v over %d containers; the kubelet's restartCount %d", max, n, st.RestartCount)
		}
		return nil
	})
}

func inList(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Two containers in a pod, each counted under its own name: a worker
// OOM-killed twice, and a container that crashes twice.
func TestTwoContainers(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "two")
	rec := newRecords(t)
	createPod(t, ns, newPod("pair", rec, corev1.RestartPolicyAlways,
		container("worker", `for i in 1 2; do `+oomKill("pair-worker")+`; [ $? = 137 ] && echo oom >> /rec/ooms; done; exec sleep 100000`),
		container("crasher", startCount+`[ "$n" -lt 2 ] && exit 4; exec sleep 100000`)))
	rec.waitLines(t, 2*time.Minute, "ooms", "oom", 2)
	waitSettled(t, ns, "pair", "worker", 0)
	p := waitSettled(t, ns, "pair", "crasher", 2)
	w, c := status(p, "worker"), status(p, "crasher")
	e.until(t, time.Minute, func(s *scrape) error {
		if err := wantCounts(s, w.ContainerID, 2, 0, -1); err != nil {
			return err
		}
		if err := wantCounts(s, c.ContainerID, 0, 2, -1); err != nil {
			return err
		}
		if err := wantCounts(s, c.LastTerminationState.Terminated.ContainerID, 0, 1, 4); err != nil {
			return err
		}
		for _, x := range s.all("container_ooms_total", map[string]string{"namespace": ns, "pod": "pair", "container": "crasher"}) {
			if x.Value != 0 {
				return fmt.Errorf("the crasher has OOM kills: %v", x.Labels)
			}
		}
		return nil
	})
}

// Pod sandboxes ("pause" containers) are never exported, though their
// cgroups are next to the containers'.
func TestNoSandboxes(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "sandbox")
	rec := newRecords(t)
	createPod(t, ns, newPod("plain", rec, corev1.RestartPolicyAlways, container("app", "exec sleep 100000")))
	p := waitSettled(t, ns, "plain", "app", 0)
	out, err := env.node.Ctr(ctxFor(t, time.Minute), "-n", "k8s.io", "containers", "ls", "-q", `labels."io.cri-containerd.kind"==sandbox`)
	if err != nil {
		t.Fatal(err)
	}
	sandboxes := strings.Fields(out)
	if len(sandboxes) < 2 {
		t.Fatalf("%d sandboxes on the node, want the exporter's and this test's at least", len(sandboxes))
	}
	e.until(t, time.Minute, func(s *scrape) error {
		if err := wantCounts(s, status(p, "app").ContainerID, 0, 0, -1); err != nil {
			return err
		}
		for _, name := range []string{"container_ooms_total", "container_restarts_total"} {
			for _, x := range s.all(name, nil) {
				for _, sb := range sandboxes {
					if strings.HasSuffix(x.Labels["container_id"], "://"+sb) {
						return errStop{fmt.Errorf("the sandbox %s is exported: %v", sb, x.Labels)}
					}
				}
			}
		}
		return nil
	})
}

// A pod deleted and made again under the same name, as a StatefulSet does.
// The old pod's dead containers stay until the kubelet collects them, and
// their series for --retention: max by (namespace, pod, container) would
// show the old pod's restarts. kube-state-metrics labels its pod series with
// the pod's uid, and so does the exporter: max by (namespace, pod, container,
// uid) is each pod's own restartCount.
func TestPodRecreated(t *testing.T) {
	t.Parallel()
	e := sharedExporter(t)
	ns := newNamespace(t, "recreated")
	script := startCount + `[ "$n" -lt $LIMIT ] && exit 2; exec sleep 100000`
	run := func(limit int) *corev1.Pod {
		c := container("app", script)
		c.Env = []corev1.EnvVar{{Name: "LIMIT", Value: fmt.Sprint(limit)}}
		createPod(t, ns, newPod("web-0", newRecords(t), corev1.RestartPolicyAlways, c))
		return waitSettled(t, ns, "web-0", "app", int32(limit))
	}
	old := run(3)
	deletePod(t, ns, "web-0")
	cur := run(1)
	if old.UID == cur.UID {
		t.Fatal("the pod made again has the old uid")
	}
	e.until(t, time.Minute, func(s *scrape) error {
		all := s.all("container_restarts_total", map[string]string{"namespace": ns, "pod": "web-0", "container": "app"})
		if len(all) == 0 {
			return fmt.Errorf("web-0 not exported")
		}
		if _, ok := all[0].Labels["uid"]; !ok {
			return fmt.Errorf("no uid label on the exporter's series (issue 13): %v", all[0].Labels)
		}
		for _, p := range []*corev1.Pod{cur} {
			max, n := s.max("container_restarts_total", map[string]string{"namespace": ns, "pod": "web-0", "container": "app", "uid": string(p.UID)})
			want := status(p, "app").RestartCount
			if n == 0 || max != float64(want) {
				return fmt.Errorf("pod %s: max restarts %v over %d containers, the kubelet's restartCount %d", p.UID, max, n, want)
			}
		}
		if max, _ := restarts(s, ns, "web-0", "app"); max != 1 {
			t.Logf("without uid, max by (namespace, pod, container) is %v, the kubelet's 1 (the old pod's dead containers)", max)
		}
		return nil
	})
}
