package kubernetes

import (
	"context"
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

// Faults on the node, with ground truth: the kubelet restarted, the
// exporter's pod deleted (the DaemonSet makes it again), the node's
// containerd restarted (the exporter, whose mount of its socket goes stale,
// ends and is started again) — each while a workload's containers crash and are
// OOM-killed. At the end every count equals what happened: none lost, none
// counted twice. What happened is told by the workload itself, never by the
// exporter: every container appends to a hostPath file a line at each start
// and each kill, with its own container id (from its cgroup).
//
// Not parallel: it takes the kubelet and containerd away from every pod.

// The workload's containers. Each logs "NAME CID start" at its start, then
// waits for the test's signal files in /rec; after /rec/finish it logs
// "final" and only sleeps.
const (
	// When /rec/work appears, a worker is OOM-killed three times while the
	// container lives on; then it logs "round".
	faultWorker = `while [ ! -e /rec/finish ]; do if [ -e /rec/work ]; then rm /rec/work; for i in 1 2 3; do ` +
		`%s; [ $? = 137 ] && echo "worker $cid oom" >> /rec/log; done; echo "worker $cid round" >> /rec/log; fi; sleep 0.2; done`
	// Exits 7 when /rec/crash appears (the kubelet starts it again).
	faultCrasher = `while [ ! -e /rec/finish ]; do if [ -e /rec/crash ]; then rm /rec/crash; echo "crasher $cid exit" >> /rec/log; exit 7; fi; sleep 0.2; done`
	// Its main process is OOM-killed when /rec/oom appears (137; the kubelet starts it again).
	faultOOMer = `while [ ! -e /rec/finish ]; do if [ -e /rec/oom ]; then rm /rec/oom; echo "oomer $cid oom" >> /rec/log; ` +
		`exec dd if=/dev/zero of=/dev/null bs=64M count=1; fi; sleep 0.2; done`
)

func faultContainer(name, loop string) corev1.Container {
	return container(name, `cid=$(sed -n 's|^[0-9]*:memory:.*/||p' /proc/self/cgroup); echo "`+name+` $cid start" >> /rec/log; `+
		loop+`; echo "`+name+` $cid final" >> /rec/log; exec sleep 100000`)
}

// truth is what the workload's log says happened to one container (one
// run: one container id).
type truth struct {
	name     string // in the pod
	id       string // containerd://…
	attempt  int    // the kubelet's restart count when it started
	ooms     int
	exitCode int // -1: still running
	final    bool
}

// readTruth reads the workload's log.
func readTruth(t *testing.T, rec records) map[string]*truth {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(rec), "log"))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*truth{}
	starts := map[string]int{}
	rounds := 0
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || len(f[1]) != 64 {
			t.Fatalf("workload log line %q", l)
		}
		id := "containerd://" + f[1]
		tr := byID[id]
		if tr == nil {
			tr = &truth{name: f[0], id: id, attempt: starts[f[0]], exitCode: -1}
			byID[id] = tr
			starts[f[0]]++
		}
		switch f[2] {
		case "oom":
			tr.ooms++
			if f[0] == "oomer" {
				tr.exitCode = 137
			}
		case "exit":
			tr.exitCode = 7
		case "final":
			tr.final = true
		case "round":
			rounds++
		}
	}
	byID[""] = &truth{name: "rounds", attempt: rounds}
	return byID
}

func (tr *truth) String() string {
	return fmt.Sprintf("%s attempt %d: %d OOM kills, exit code %d", tr.name, tr.attempt, tr.ooms, tr.exitCode)
}

// starts counts the starts of the container name in the workload's log.
func starts(t *testing.T, rec records, name string) int {
	n := 0
	for id, tr := range readTruth(t, rec) {
		if id != "" && tr.name == name {
			n++
		}
	}
	return n
}

// rounds counts the worker's rounds of kills in the workload's log.
func rounds(t *testing.T, rec records) int { return readTruth(t, rec)[""].attempt }

func TestFaults(t *testing.T) {
	t0 := time.Now()
	ens := newNamespace(t, "faults-exporter")
	// Its own exporter, whose pod the test deletes; the retention outlasts the test.
	e := installExporter(t, "mcm", ens, map[string]any{"extraArgs": []any{"--retention=30m"}})
	e.waitSourcesUp(t, "containerd", "cgroup")

	ns := newNamespace(t, "faults")
	rec := newRecords(t)
	createPod(t, ns, newPod("workload", rec, corev1.RestartPolicyAlways,
		faultContainer("worker", fmt.Sprintf(faultWorker, oomKill("fault-worker"))),
		faultContainer("crasher", faultCrasher),
		faultContainer("oomer", faultOOMer)))
	waitPod(t, ns, "workload", 3*time.Minute, podReady)
	uid := string(getPod(t, ns, "workload").UID)

	// round makes, while fault lasts, the worker's workers be OOM-killed
	// three times, the crasher exit and the oomer's main process be
	// OOM-killed; after recover, it waits until the kubelet started the
	// crasher and the oomer again.
	ctx := ctxFor(t, 15*time.Minute)
	round := func(what string, fault, recover func()) {
		t.Helper()
		c0, o0, r0 := starts(t, rec, "crasher"), starts(t, rec, "oomer"), rounds(t, rec)
		t1 := time.Now()
		if fault != nil {
			fault()
		}
		// A round that fails still gives the node its daemon back: else
		// every test after this one met a node without containerd.
		recovered := recover == nil
		defer func() {
			if !recovered {
				recover()
			}
		}()
		for _, f := range []string{"work", "crash", "oom"} {
			rec.touch(t, f)
		}
		// Quiet, a round takes 2.5 s; a minute was once not enough in CI,
		// while containerd was stopped: what the workload did is in the
		// error.
		err := waitFor(3*time.Minute, func() error {
			if r := rounds(t, rec); r == r0 {
				return fmt.Errorf("the worker has not done its round yet")
			}
			for _, f := range []string{"crash", "oom"} {
				if _, err := os.Stat(filepath.Join(string(rec), f)); err == nil {
					return fmt.Errorf("the workload has not taken /rec/%s yet", f)
				}
			}
			return nil
		})
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(string(rec), "log"))
			t.Fatalf("%s: %v\nthe workload's log:\n%s\nthe pod: %s", what, err, lastLines(string(log), 20), describeStatuses(getPod(t, ns, "workload")))
		}
		if !recovered {
			recovered = true
			recover()
		}
		eventually(t, 3*time.Minute, func() error {
			if c, o := starts(t, rec, "crasher"), starts(t, rec, "oomer"); c <= c0 || o <= o0 {
				return fmt.Errorf("not started again yet: crasher %d starts (%d before), oomer %d (%d)", c, c0, o, o0)
			}
			return nil
		})
		t.Logf("%s: round done in %s", what, time.Since(t1).Round(100*time.Millisecond))
	}
	// known are the containers the exporter must know: those there when
	// its pod was made again, or later.
	var known []string
	check := func(what string) {
		t.Helper()
		p := waitPod(t, ns, "workload", 3*time.Minute, func(p *corev1.Pod) error {
			for _, name := range []string{"worker", "crasher", "oomer"} {
				st := status(p, name)
				if st == nil || st.State.Running == nil || int(st.RestartCount) != starts(t, rec, name)-1 {
					return fmt.Errorf("%s not settled: %s; %d starts", name, describeStatuses(p), starts(t, rec, name))
				}
			}
			return nil
		})
		known = append(known, nodeContainers(t, uid)...)
		if err := compare(e, ns, p, readTruth(t, rec), known); err != nil {
			// Go on: the faults after this one are worth knowing of too.
			t.Errorf("after %s: %v", what, err)
			return
		}
		t.Logf("%s: every count right", what)
	}

	round("no fault", nil, nil)
	check("no fault")

	kubelet := env.node.Kubelet()
	round("the kubelet stopped (SIGTERM)", func() {
		if err := kubelet.Stop(); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if err := kubelet.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := env.node.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	})
	check("the kubelet restarted")

	old := e.currentPod()
	round("the exporter's pod deleted", func() {
		if err := env.client.CoreV1().Pods(ens).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}, nil)
	eventually(t, 3*time.Minute, func() error {
		if p := e.waitPod(t); p.UID == old.UID {
			return fmt.Errorf("the old exporter pod %s is still the Ready one", old.Name)
		}
		return nil
	})
	known = nodeContainers(t, uid) // the new exporter cannot know those removed before it started
	t.Logf("the DaemonSet made the exporter's pod again: %s", e.currentPod().Name)
	check("the exporter's pod made again")

	containerd := env.node.Containerd()
	before := status(getPod(t, ens, e.currentPod().Name), "exporter").RestartCount
	round("the node's containerd stopped (SIGTERM)", func() {
		if err := containerd.Stop(); err != nil {
			t.Fatal(err)
		}
	}, func() {
		if err := containerd.Start(ctx); err != nil {
			t.Fatal(err)
		}
	})
	// containerd makes its socket anew, and the exporter's mount of the
	// socket file keeps the old one: the exporter notices, ends, and the
	// kubelet starts its container again with the new socket.
	// Why is in its termination message (kubectl describe pod): its log
	// from just then may be lost, as the restarted containerd takes up the
	// container's output again.
	eventually(t, 3*time.Minute, func() error {
		st := status(getPod(t, ens, e.currentPod().Name), "exporter")
		if st.RestartCount != before+1 || st.LastTerminationState.Terminated == nil || st.LastTerminationState.Terminated.ExitCode != 1 {
			return fmt.Errorf("the exporter has not ended once, with status 1, since containerd restarted: %+v", st)
		}
		if msg := st.LastTerminationState.Terminated.Message; !strings.Contains(msg, "a mount of its own, refuses connections") {
			return errStop{fmt.Errorf("the exporter ended without saying why the runtime's socket is stale: %q", msg)}
		}
		return nil
	})
	e.waitPod(t)
	e.waitSourcesUp(t, "containerd", "cgroup")
	known = nodeContainers(t, uid) // the exporter started again cannot know those removed before
	check("containerd restarted")

	// The end: every container stops doing anything; the counts stay right.
	rec.touch(t, "finish")
	eventually(t, time.Minute, func() error {
		p := getPod(t, ns, "workload")
		truths := readTruth(t, rec)
		for _, name := range []string{"worker", "crasher", "oomer"} {
			if st := status(p, name); st == nil || truths[st.ContainerID] == nil || !truths[st.ContainerID].final {
				return fmt.Errorf("%s has not seen the finish yet", name)
			}
		}
		return nil
	})
	check("the end")
	truths := readTruth(t, rec)
	for _, id := range sortedIDs(truths) {
		t.Logf("%s (%s)", truths[id], id[len("containerd://"):][:12])
	}
	t.Logf("%s", time.Since(t0).Round(time.Second))
}

// sortedIDs are the containers of the truth, by name and attempt.
func sortedIDs(truths map[string]*truth) []string {
	var ids []string
	for id := range truths {
		if id != "" {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := truths[ids[i]], truths[ids[j]]
		return a.name < b.name || a.name == b.name && a.attempt < b.attempt
	})
	return ids
}

// compare waits until the exporter shows for every container of the
// workload what its log says, and max by (namespace, pod, container) of the
// restarts is the kubelet's. A container the exporter may not know (removed
// by the kubelet before the exporter's pod was made again) may be missing,
// never wrong; nothing is exported that never ran.
func compare(e *exporter, ns string, p *corev1.Pod, truths map[string]*truth, known []string) error {
	return waitFor(time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		s, err := e.scrape(ctx)
		if err != nil {
			return err
		}
		var errs []string
		for _, id := range sortedIDs(truths) {
			tr := truths[id]
			err := wantCounts(s, id, float64(tr.ooms), float64(tr.attempt), float64(tr.exitCode))
			if err != nil && (inList(known, id) || s.all("container_restarts_total", map[string]string{"container_id": id}) != nil) {
				errs = append(errs, fmt.Sprintf("%s: %v", tr, err))
			}
		}
		for _, x := range s.all("container_restarts_total", map[string]string{"namespace": ns}) {
			if truths[x.Labels["container_id"]] == nil {
				errs = append(errs, fmt.Sprintf("exported, but never ran: %v", x.Labels))
			}
		}
		for _, name := range []string{"worker", "crasher", "oomer"} {
			if max, _ := restarts(s, ns, "workload", name); max != float64(status(p, name).RestartCount) {
				errs = append(errs, fmt.Sprintf("%s: max restarts %v, the kubelet's %d", name, max, status(p, name).RestartCount))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%d wrong:\n%s", len(errs), strings.Join(errs, "\n"))
		}
		return nil
	})
}

// nodeContainers lists the ids of the pod's containers in the node's containerd.
func nodeContainers(t *testing.T, uid string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.node.Ctr(ctx, "-n", "k8s.io", "containers", "ls", "-q", fmt.Sprintf(`labels."io.kubernetes.pod.uid"==%s`, uid))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range strings.Fields(out) {
		ids = append(ids, "containerd://"+id)
	}
	return ids
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
