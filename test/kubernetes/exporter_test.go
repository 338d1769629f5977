package kubernetes

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/postrenderer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// chartDir is the chart of this checkout.
const chartDir = repoRoot + "/deploy/helm/missing-container-metrics"

// exporter is a DaemonSet of the exporter on the node: its pod there, reached
// over the pod network.
type exporter struct {
	ns, selector string
	// How /metrics is reached: scheme, basic auth, TLS.
	scheme         string
	user, password string
	tls            *tls.Config

	mu  sync.Mutex
	pod *corev1.Pod
}

// nodeValues are the chart values every install on this node needs: the image
// built from the checkout; the node's runtime's socket, which is not at its
// default path here (as containerd's on k3s and RKE2) but in the harness:
// containerd's, or CRI-O's on a node on CRI-O; and the kubelet's cgroup root,
// which is not / but the harness's (its --cgroup-root), as the chart says
// to give it: there the kernel reader trusts the containers' cgroups by
// their paths, as it does below /kubepods, also once they are removed.
func nodeValues() map[string]any {
	sources := map[string]any{"containerd": map[string]any{"socket": env.node.ContainerdAddress}}
	if env.node.Runtime() == "cri-o" {
		sources = map[string]any{"containerd": map[string]any{"enabled": false},
			"crio": map[string]any{"enabled": true, "socket": env.node.RuntimeEndpoint()}}
	}
	sources["kernel"] = map[string]any{"cgroupParents": []any{env.node.CgroupRoot}}
	return map[string]any{
		"image":   map[string]any{"repository": env.imageRepo, "tag": env.imageTag},
		"sources": sources,
	}
}

// merge returns a with b's values merged in, maps recursively.
func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = merge(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// helmConfig is helm's action configuration for namespace ns of the node.
func helmConfig(t testing.TB, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &env.node.Kubeconfig
	flags.Namespace = &ns
	cfg := action.NewConfiguration()
	cfg.SetLogger(slog.DiscardHandler)
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// helmInstall installs the chart of this checkout as helm install --wait
// does, with values, into namespace ns; it is uninstalled when the test ends.
// A post-renderer, if given, changes the rendered objects before they are
// sent, as helm install --post-renderer does.
func helmInstall(t testing.TB, release, ns string, values map[string]any, post ...postrenderer.PostRenderer) {
	t.Helper()
	chart, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	cfg := helmConfig(t, ns)
	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace = release, ns
	install.WaitStrategy, install.Timeout = kube.StatusWatcherStrategy, 3*time.Minute
	for _, p := range post {
		install.PostRenderer = p
	}
	t0 := time.Now()
	_, err = install.RunWithContext(ctxFor(t, 4*time.Minute), chart, values)
	t.Cleanup(func() {
		uninstall := action.NewUninstall(helmConfig(t, ns))
		uninstall.WaitStrategy, uninstall.Timeout = kube.StatusWatcherStrategy, 2*time.Minute
		if _, err := uninstall.Run(release); err != nil {
			t.Errorf("helm uninstall %s: %v", release, err)
		}
	})
	if err != nil {
		logPods(t, ns, "app.kubernetes.io/instance="+release)
		t.Fatalf("helm install %s: %v", release, err)
	}
	t.Logf("helm install %s: %s", release, time.Since(t0).Round(100*time.Millisecond))
}

// logPods logs every pod that selector selects in ns.
func logPods(t testing.TB, ns, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := env.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Logf("pods %s in %s: %v", selector, ns, err)
		return
	}
	if len(pods.Items) == 0 {
		t.Logf("no pods %s in %s", selector, ns)
	}
	for _, p := range pods.Items {
		logPod(t, ns, p.Name)
	}
}

// installExporter installs the chart with nodeValues and values, and waits
// until its pod on the node is Ready.
func installExporter(t testing.TB, release, ns string, values map[string]any, post ...postrenderer.PostRenderer) *exporter {
	t.Helper()
	helmInstall(t, release, ns, merge(nodeValues(), values), post...)
	e := &exporter{ns: ns, selector: "app.kubernetes.io/instance=" + release, scheme: "http"}
	e.waitPod(t)
	t.Cleanup(func() {
		if t.Failed() {
			logPods(t, ns, e.selector)
		}
	})
	return e
}

// waitPod waits until the DaemonSet's pod on the node is Ready, and
// remembers it (a pod the DaemonSet made again replaces the one before).
func (e *exporter) waitPod(t testing.TB) *corev1.Pod {
	t.Helper()
	eventually(t, 3*time.Minute, func() error {
		pods, err := env.client.CoreV1().Pods(e.ns).List(ctxFor(t, time.Minute), metav1.ListOptions{LabelSelector: e.selector})
		if err != nil {
			return err
		}
		var states []string
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				continue
			}
			if err := podReady(p); err != nil || p.Status.PodIP == "" {
				states = append(states, fmt.Sprintf("%s: %v", p.Name, err))
				continue
			}
			if p.Spec.NodeName != env.node.Name {
				return errStop{fmt.Errorf("pod %s on node %q, want %s", p.Name, p.Spec.NodeName, env.node.Name)}
			}
			e.mu.Lock()
			e.pod = p
			e.mu.Unlock()
			return nil
		}
		return fmt.Errorf("no Ready exporter pod %s in %s yet: %s", e.selector, e.ns, strings.Join(states, "; "))
	})
	return e.currentPod()
}

func (e *exporter) currentPod() *corev1.Pod {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pod
}

// url is the exporter's /metrics, at its pod's address.
func (e *exporter) url() string {
	return fmt.Sprintf("%s://%s:3001/metrics", e.scheme, e.currentPod().Status.PodIP)
}

// scrape reads /metrics once.
func (e *exporter) scrape(ctx context.Context) (*scrape, error) {
	code, body, err := fetch(ctx, e.url(), e.user, e.password, e.tls)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("%s: HTTP %d: %s", e.url(), code, body)
	}
	return parseMetrics(body)
}

// until scrapes until check accepts what the exporter shows.
func (e *exporter) until(t testing.TB, timeout time.Duration, check func(*scrape) error) {
	t.Helper()
	eventually(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		s, err := e.scrape(ctx)
		if err != nil {
			return err
		}
		return check(s)
	})
}

// waitSourcesUp waits until every source named is up.
func (e *exporter) waitSourcesUp(t testing.TB, sources ...string) {
	t.Helper()
	e.until(t, 2*time.Minute, func(s *scrape) error {
		for _, src := range sources {
			if v, err := s.one("missing_container_metrics_source_up", map[string]string{"source": src}); err != nil || v != 1 {
				return fmt.Errorf("source %s up = %v (%v)", src, v, err)
			}
		}
		return nil
	})
}

var (
	sharedOnce sync.Once
	shared     *exporter
)

// sharedRetention is the shared exporter's --retention: the tests that wait
// for series to go wait this long.
const sharedRetention = 30 * time.Second

// sharedExporter is the exporter of the tests that only add pods of their
// own: the chart's defaults on this node, and a short retention. Installed by
// the first test that asks, it stays until the end.
func sharedExporter(t *testing.T) *exporter {
	t.Helper()
	sharedOnce.Do(func() {
		// Installed outside any one test's cleanup: a test of its own that
		// never ends first, so that the release lives until the binary exits.
		ns := "mcm-shared"
		ok := t.Run("install the shared exporter", func(t *testing.T) {
			if _, err := env.client.CoreV1().Namespaces().Create(ctxFor(t, time.Minute), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
				Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			chart, err := loader.Load(chartDir)
			if err != nil {
				t.Fatal(err)
			}
			install := action.NewInstall(helmConfig(t, ns))
			install.ReleaseName, install.Namespace = "mcm", ns
			install.WaitStrategy, install.Timeout = kube.StatusWatcherStrategy, 3*time.Minute
			if _, err := install.RunWithContext(ctxFor(t, 4*time.Minute), chart,
				merge(nodeValues(), map[string]any{"extraArgs": []any{"--retention=" + sharedRetention.String()}})); err != nil {
				logPods(t, ns, "app.kubernetes.io/instance=mcm")
				t.Fatalf("helm install: %v", err)
			}
			e := &exporter{ns: ns, selector: "app.kubernetes.io/instance=mcm", scheme: "http"}
			e.waitPod(t)
			e.waitSourcesUp(t, env.node.Runtime(), "cgroup")
			shared = e
		})
		if !ok {
			shared = nil
		}
	})
	if shared == nil {
		t.Fatal("the shared exporter did not start")
	}
	t.Cleanup(func() {
		if t.Failed() {
			logPod(t, shared.ns, shared.currentPod().Name)
		}
	})
	return shared
}
