package kubernetes

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/missing-container-metrics/missing-container-metrics/test/harness"
)

// errStop ends eventually at once.
type errStop struct{ error }

// eventually calls f every 250 ms until it returns nil, and fails the test
// with f's last error if timeout passes first or f returns an errStop.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := waitFor(timeout, f); err != nil {
		t.Fatal(err)
	}
}

func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) || time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// newNamespace makes a namespace for one test, labelled as docs/deploy.md
// says for the exporter's (Pod Security Admission level privileged: hostPath
// volumes), and deletes it when the test ends.
func newNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: randomName(prefix),
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
	if _, err := env.client.CoreV1().Namespaces().Create(ctxFor(t, time.Minute), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = env.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// records is a directory of the host that a pod's containers write their
// own account of what happened to (a hostPath volume at /rec).
type records string

func newRecords(t testing.TB) records {
	t.Helper()
	dir, err := os.MkdirTemp(env.records, "pod")
	if err != nil {
		t.Fatal(err)
	}
	return records(dir)
}

// lines counts the lines that are word in the file name.
func (r records) lines(t testing.TB, name, word string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(string(r), name))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == word {
			n++
		}
	}
	return n
}

// touch makes the file name, a signal to the pod's containers.
func (r records) touch(t testing.TB, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(string(r), name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLines waits until the file name holds at least n lines word.
func (r records) waitLines(t testing.TB, timeout time.Duration, name, word string, n int) {
	t.Helper()
	eventually(t, timeout, func() error {
		if got := r.lines(t, name, word); got < n {
			return fmt.Errorf("%s: %d lines %q, waiting for %d", name, got, word, n)
		}
		return nil
	})
}

// The workload image: busybox, imported into the node's containerd (never pulled).
const busyboxImage = "busybox:test"

// memoryLimit is every workload container's: dd's 64 MiB block is OOM-killed at once.
var memoryLimit = resource.MustParse("32Mi")

// oomKill is a shell command whose process the OOM killer takes at once: a
// child of the shell that runs it, dd under the command name victim (its
// comm, which the kernel log names; at most 15 bytes). Its status is 137.
func oomKill(victim string) string {
	return fmt.Sprintf(`(ln -sf /bin/busybox /tmp/%[1]s; exec -a dd /tmp/%[1]s if=/dev/zero of=/dev/null bs=64M count=1) 2>/dev/null`, victim)
}

// container is a busybox container running script under sh, with the pod's
// records at /rec and a 32 MiB memory limit.
func container(name, script string) corev1.Container {
	return corev1.Container{
		Name:            name,
		Image:           busyboxImage,
		ImagePullPolicy: corev1.PullNever,
		Command:         []string{"/bin/sh", "-c", script},
		Resources: corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceMemory: memoryLimit},
			Requests: corev1.ResourceList{corev1.ResourceMemory: memoryLimit},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "rec", MountPath: "/rec"}},
	}
}

// newPod is a pod of containers with the records mounted, that is not
// restarted unless restart says so.
func newPod(name string, rec records, restart corev1.RestartPolicy, containers ...corev1.Container) *corev1.Pod {
	grace := int64(2)
	dirType := corev1.HostPathDirectory
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RuntimeClassName: runtimeClassName(),
			// The node has no cluster DNS.
			DNSPolicy:                     corev1.DNSDefault,
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: &grace,
			Containers:                    containers,
			Volumes: []corev1.Volume{{Name: "rec", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: string(rec), Type: &dirType}}}},
		},
	}
}

// runtimeClassName is the test pods' RuntimeClass, nil for the runtime's default.
func runtimeClassName() *string {
	if env.runtimeClass == "" {
		return nil
	}
	return &env.runtimeClass
}

func createPod(t testing.TB, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	p, err := env.client.CoreV1().Pods(ns).Create(ctxFor(t, time.Minute), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, pod.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logPod(t, ns, pod.Name)
		}
	})
	return p
}

func getPod(t testing.TB, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := env.client.CoreV1().Pods(ns).Get(ctxFor(t, time.Minute), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPod waits until the pod's state satisfies check, and returns it.
func waitPod(t testing.TB, ns, name string, timeout time.Duration, check func(*corev1.Pod) error) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, timeout, func() error {
		p, err := env.client.CoreV1().Pods(ns).Get(ctxFor(t, time.Minute), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		if err := check(p); err != nil {
			return fmt.Errorf("pod %s/%s: %w", ns, name, err)
		}
		return nil
	})
	return pod
}

// deletePod deletes the pod and waits until the API has no pod of its uid.
func deletePod(t testing.TB, ns, name string) {
	t.Helper()
	uid := getPod(t, ns, name).UID
	if err := env.client.CoreV1().Pods(ns).Delete(ctxFor(t, time.Minute), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, func() error {
		p, err := env.client.CoreV1().Pods(ns).Get(ctxFor(t, time.Minute), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && p.UID != uid) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("pod %s/%s (%s) still there: %s", ns, name, uid, p.Status.Phase)
	})
}

// status is the status of the pod's container (or init container) name.
func status(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func podReady(p *corev1.Pod) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("not Ready: %s %s", p.Status.Phase, describeStatuses(p))
}

func describeStatuses(p *corev1.Pod) string {
	var parts []string
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			st := "?"
			switch {
			case s.State.Running != nil:
				st = "running"
			case s.State.Waiting != nil:
				st = "waiting " + s.State.Waiting.Reason + " " + s.State.Waiting.Message
			case s.State.Terminated != nil:
				st = fmt.Sprintf("terminated %s %d", s.State.Terminated.Reason, s.State.Terminated.ExitCode)
			}
			parts = append(parts, fmt.Sprintf("%s: %s, restarts %d", s.Name, st, s.RestartCount))
		}
	}
	return strings.Join(parts, "; ")
}

// logPod logs the pod's status, its events and its containers' logs (read
// from the kubelet's podLogsDir).
func logPod(t testing.TB, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := env.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Logf("pod %s/%s: %v", ns, name, err)
		return
	}
	t.Logf("pod %s/%s (%s) %s: %s", ns, name, p.UID, p.Status.Phase, describeStatuses(p))
	if evs, err := env.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name}); err == nil {
		for _, e := range evs.Items {
			t.Logf("  event %s %s: %s", e.Type, e.Reason, e.Message)
		}
	}
	dir := filepath.Join(env.node.KubeletDir, "pod-logs", fmt.Sprintf("%s_%s_%s", ns, name, p.UID))
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("  log %s:\n%s", strings.TrimPrefix(f, dir+"/"), b)
	}
}

// A scrape of /metrics, parsed (test/harness).
type scrape struct{ *harness.Metrics }

// sample is one series and its value.
type sample = harness.Sample

func parseMetrics(body []byte) (*scrape, error) {
	m, err := harness.ParseMetrics(body)
	if err != nil {
		return nil, err
	}
	return &scrape{m}, nil
}

// all returns the series of family name whose labels include match, by
// container_id.
func (s *scrape) all(name string, match map[string]string) []sample {
	out := s.All(name, match)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Labels["container_id"] < out[j].Labels["container_id"] })
	return out
}

// one returns the value of the one series of family name matching match.
func (s *scrape) one(name string, match map[string]string) (float64, error) {
	all := s.all(name, match)
	if len(all) != 1 {
		return 0, fmt.Errorf("%d series %s%v, want 1", len(all), name, match)
	}
	return all[0].Value, nil
}

// max is `max by (...)` of family name over the series matching match, and
// how many there are.
func (s *scrape) max(name string, match map[string]string) (float64, int) {
	all := s.all(name, match)
	m := 0.0
	for i, x := range all {
		if i == 0 || x.Value > m {
			m = x.Value
		}
	}
	return m, len(all)
}

// fetch GETs url with an optional basic auth user and password, and a client
// that trusts tlsConfig (nil: plain HTTP).
func fetch(ctx context.Context, url, user, password string, tlsConfig *tls.Config) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
